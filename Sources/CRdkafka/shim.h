// librdkafka's C API (Debian's librdkafka-dev headers). At run time the binaries load
// the newer librdkafka 2.x runtime from .local/lib through their rpath (see Package.swift).
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

// Swift cannot call C variadic functions: these wrappers call rd_kafka_producev for it.
// The payload is copied (RD_KAFKA_MSG_F_COPY); on success librdkafka owns `headers`.
static inline rd_kafka_resp_err_t healthcode_rd_kafka_produce(rd_kafka_t *rk,
                                                              rd_kafka_topic_t *rkt,
                                                              int32_t partition,
                                                              const void *key,
                                                              size_t key_len,
                                                              const void *value,
                                                              size_t value_len,
                                                              rd_kafka_headers_t *headers,
                                                              void *opaque) {
    if (headers) {
        return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY((void *)key, key_len),
                                 RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_KEY((void *)key, key_len),
                             RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}
