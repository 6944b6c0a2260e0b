import CoreMetrics
import Synchronization
import Testing

@testable import HealthCodeKafka

/// librdkafka's statistics JSON becomes gauges.
struct KafkaStatisticsTests {
    @Test func statisticsBecomeGauges() {
        let factory = RecordingMetricsFactory()
        let statistics = KafkaStatistics(clientID: "c1", factory: factory)
        let json = """
            {"msg_cnt": 12, "msg_size": 3600,
             "brokers": {"127.0.0.1:9092/1": {"nodeid": 1, "rtt": {"cnt": 4, "avg": 1500, "p99": 4000},
                                               "int_latency": {"cnt": 4, "avg": 200, "p99": 900}},
                         "127.0.0.1:9092/bootstrap": {"nodeid": -1, "rtt": {"cnt": 1, "avg": 1, "p99": 1}}},
             "topics": {"events": {"partitions": {"0": {"consumer_lag": 42, "fetchq_cnt": 7},
                                                  "-1": {"consumer_lag": 99}}}},
             "cgrp": {"rebalance_cnt": 3}}
            """
        Array(json.utf8).withUnsafeBytes { statistics.emit(json: $0) }
        let values = factory.values
        #expect(values["kafka_client_queue_messages client_id=c1"] == 12)
        #expect(values["kafka_client_queue_bytes client_id=c1"] == 3600)
        #expect(values["kafka_broker_rtt_seconds client_id=c1 broker=127.0.0.1:9092/1 quantile=avg"] == 0.0015)
        #expect(values["kafka_broker_rtt_seconds client_id=c1 broker=127.0.0.1:9092/1 quantile=p99"] == 0.004)
        #expect(
            values["kafka_producer_queue_latency_seconds client_id=c1 broker=127.0.0.1:9092/1 quantile=avg"] == 0.0002
        )
        #expect(values["kafka_consumer_lag_messages client_id=c1 topic=events partition=0"] == 42)
        #expect(values["kafka_consumer_prefetch_messages client_id=c1 topic=events partition=0"] == 7)
        #expect(values["kafka_consumer_rebalances client_id=c1"] == 3)
        #expect(!values.keys.contains { $0.contains("bootstrap") || $0.contains("partition=-1") })
    }
}

/// Records the last value of every gauge, keyed by label and dimensions.
final class RecordingMetricsFactory: MetricsFactory, Sendable {
    private let recorded = Mutex<[String: Double]>([:])

    var values: [String: Double] { recorded.withLock { $0 } }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        let key = ([label] + dimensions.map { "\($0)=\($1)" }).joined(separator: " ")
        return Recorder { value in self.recorded.withLock { $0[key] = value } }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Counter() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Timer() }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    private final class Recorder: RecorderHandler, Sendable {
        let sink: @Sendable (Double) -> Void
        init(sink: @escaping @Sendable (Double) -> Void) { self.sink = sink }
        func record(_ value: Int64) { sink(Double(value)) }
        func record(_ value: Double) { sink(value) }
    }

    private final class Counter: CounterHandler, Sendable {
        func increment(by: Int64) {}
        func reset() {}
    }

    private final class Timer: TimerHandler, Sendable {
        func recordNanoseconds(_ duration: Int64) {}
    }
}
