import Foundation
import Metrics

/// Turns librdkafka's statistics JSON (emitted every `statistics.interval.ms`) into swift-metrics gauges.
///
/// Every metric has the dimension `client_id`. Emitted:
/// - `kafka_client_queue_messages`, `kafka_client_queue_bytes`: messages and bytes waiting in the
///   producer's queues (`msg_cnt`, `msg_size`).
/// - `kafka_broker_rtt_seconds` (`broker`, `quantile` = `avg`/`p99`): request round trip, including
///   produce latency at the broker.
/// - `kafka_producer_queue_latency_seconds` (`broker`, `quantile`): time a message waits in the
///   producer before it is sent (`int_latency`).
/// - `kafka_consumer_lag_messages` (`topic`, `partition`): librdkafka's view of the consumer lag.
/// - `kafka_consumer_prefetch_messages` (`topic`, `partition`): messages fetched, not yet polled.
/// - `kafka_consumer_rebalances` (cumulative count of group rebalances).
final class KafkaStatistics: Sendable {
    private let clientID: String
    private let factory: any MetricsFactory

    init(clientID: String, factory: any MetricsFactory = MetricsSystem.factory) {
        self.clientID = clientID
        self.factory = factory
    }

    func emit(json: UnsafeRawBufferPointer) {
        guard
            let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any]
        else { return }
        let base = [("client_id", clientID)]
        if let messages = object["msg_cnt"] as? NSNumber {
            Gauge(label: "kafka_client_queue_messages", dimensions: base, factory: factory).record(messages.doubleValue)
        }
        if let bytes = object["msg_size"] as? NSNumber {
            Gauge(label: "kafka_client_queue_bytes", dimensions: base, factory: factory).record(bytes.doubleValue)
        }
        if let brokers = object["brokers"] as? [String: Any] {
            for case (let name, let broker as [String: Any]) in brokers {
                guard let nodeID = broker["nodeid"] as? NSNumber, nodeID.intValue >= 0 else { continue }
                let dimensions = base + [("broker", name)]
                recordWindow(broker["rtt"], label: "kafka_broker_rtt_seconds", dimensions: dimensions)
                recordWindow(
                    broker["int_latency"],
                    label: "kafka_producer_queue_latency_seconds",
                    dimensions: dimensions
                )
            }
        }
        if let topics = object["topics"] as? [String: Any] {
            for case (let topic, let topicObject as [String: Any]) in topics {
                guard let partitions = topicObject["partitions"] as? [String: Any] else { continue }
                for case (let partition, let partitionObject as [String: Any]) in partitions where partition != "-1" {
                    let dimensions = base + [("topic", topic), ("partition", partition)]
                    if let lag = partitionObject["consumer_lag"] as? NSNumber, lag.int64Value >= 0 {
                        Gauge(label: "kafka_consumer_lag_messages", dimensions: dimensions, factory: factory).record(
                            lag.doubleValue
                        )
                    }
                    if let queued = partitionObject["fetchq_cnt"] as? NSNumber, queued.int64Value > 0 {
                        Gauge(label: "kafka_consumer_prefetch_messages", dimensions: dimensions, factory: factory)
                            .record(queued.doubleValue)
                    }
                }
            }
        }
        if let group = object["cgrp"] as? [String: Any], let rebalances = group["rebalance_cnt"] as? NSNumber {
            Gauge(label: "kafka_consumer_rebalances", dimensions: base, factory: factory).record(rebalances.doubleValue)
        }
    }

    /// Records a librdkafka rolling window (microseconds) as `avg` and `p99` gauges in seconds.
    private func recordWindow(_ window: Any?, label: String, dimensions: [(String, String)]) {
        guard let window = window as? [String: Any], let count = window["cnt"] as? NSNumber, count.intValue > 0
        else { return }
        for quantile in ["avg", "p99"] {
            if let value = window[quantile] as? NSNumber {
                Gauge(label: label, dimensions: dimensions + [("quantile", quantile)], factory: factory)
                    .record(value.doubleValue / 1_000_000)
            }
        }
    }
}
