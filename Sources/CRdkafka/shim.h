// librdkafka's C API (Debian's librdkafka-dev headers). At run time the binaries load
// the newer librdkafka 2.x runtime from .local/lib through their rpath (see Package.swift).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
