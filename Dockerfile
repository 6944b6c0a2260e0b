# Production image of the healthcode binary (gateway, projector, query API and tools).
# Built by docker-compose.yml; not buildable on the development machines of this project (no Docker
# engine there), kept correct for deployments.
FROM swift:6.2-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product healthcode --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/healthcode" /usr/local/bin/healthcode

FROM debian:bookworm-slim
# Debian's librdkafka 2.0.2 runtime talks to Apache Kafka (only the Tansu broker used for local
# development needs the newer runtime that scripts/bootstrap.sh provides).
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka1 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 healthcode
COPY --from=build /usr/local/bin/healthcode /usr/local/bin/healthcode
COPY projections /app/projections
ENV HC_MIGRATIONS=/app/projections/migrations \
    HC_RULES=/app/projections/rules/reference-v1.json
WORKDIR /app
USER healthcode
ENTRYPOINT ["healthcode"]
