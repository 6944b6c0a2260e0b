import HealthCodeCore
import HealthCodeGateway
import HealthCodeKafka
import Synchronization

/// Where an output came from: the inbound message it was made of, carried in the output's `hc-inbound` header
/// as `topic/partition/offset`, so that a restarted processor can tell which messages it already wrote.
struct InboundOrigin: Hashable, Sendable {
    var partition: KafkaTopicPartition
    var offset: Int64

    static let header = "hc-inbound"

    var headerValue: [UInt8] { Array("\(partition.topic)/\(partition.partition)/\(offset)".utf8) }

    init(partition: KafkaTopicPartition, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    /// The origin a header value names; `nil` for anything else (an output of the gateway has none).
    init?(headerValue: [UInt8]) {
        let parts = String(decoding: headerValue, as: UTF8.self).split(separator: "/")
        guard parts.count == 3, let partition = Int32(parts[1]), let offset = Int64(parts[2]) else { return nil }
        self.init(partition: KafkaTopicPartition(topic: String(parts[0]), partition: partition), offset: offset)
    }
}

/// Where the outputs of one batch go: an ``EventLog`` that writes the ingested events to the events topic with
/// their origin (``EventRecord/item`` indexes `origins`), and the writer of the batch's rejects. Every output
/// goes through `send`, which reports each message's placement or failure.
struct BatchOutputs: EventLog {
    let eventsTopic: String
    let origins: [InboundOrigin]
    let send: @Sendable ([KafkaOutgoingMessage]) async -> [Result<KafkaDeliveryReport, KafkaError>]

    /// Always: a failed output fails its batch, and the processor starts again from its positions.
    var isWriting: Bool { true }

    func append(_ records: [EventRecord]) async -> [Result<EventPosition, EventLogError>] {
        let messages = records.map { record in
            KafkaOutgoingMessage(
                topic: eventsTopic,
                key: Array(record.key.utf8),
                value: record.value,
                headers: [KafkaHeader(key: InboundOrigin.header, value: origins[record.item].headerValue)]
            )
        }
        return KafkaEventLog.positions(await send(messages))
    }
}

/// A message of a publisher's rejects topic: what the processor did not pass to the events topic, and why.
/// Its value is JSON: `{"inbound":{"offset","partition","topic"},"status","id","errors":[{"code","field","reason"}],
/// "heldId"}`; never a payload value, never a raw identifier.
enum InboundReject {
    /// Outcomes that go to the rejects topic.
    static func isReported(_ status: EventResult.Status) -> Bool {
        status == .rejected || status == .duplicate || status == .held
    }

    static func message(
        for result: EventResult,
        origin: InboundOrigin,
        topic: String
    ) -> KafkaOutgoingMessage {
        var out = JSONWriter(capacity: 256)
        out.raw("{")
        if let errors = result.errors {
            out.key("errors")
            EventProblem.write(errors, to: &out)
            out.raw(",")
        }
        if let heldID = result.heldID {
            out.key("heldId")
            out.integer(heldID)
            out.raw(",")
        }
        if let id = result.id {
            out.key("id")
            out.string(id)
            out.raw(",")
        }
        out.key("inbound")
        out.raw("{")
        out.key("offset")
        out.integer(origin.offset)
        out.raw(",")
        out.key("partition")
        out.integer(Int64(origin.partition.partition))
        out.raw(",")
        out.key("topic")
        out.string(origin.partition.topic)
        out.raw("},")
        out.key("status")
        out.string(result.status.rawValue)
        out.raw("}")
        return KafkaOutgoingMessage(
            topic: topic,
            key: Array("\(origin.partition.partition)".utf8),
            value: out.bytes,
            headers: [KafkaHeader(key: InboundOrigin.header, value: origin.headerValue)]
        )
    }
}

/// The end of each output partition as far as this processor's acknowledged outputs show (the offset after the
/// last one), so that a checkpoint can say where later outputs lie.
final class OutputEnds: Sendable {
    private let ends: Mutex<[String: [Int32: Int64]]>

    init(_ initial: [String: [Int32: Int64]]) { ends = Mutex(initial) }

    func record(_ reports: some Sequence<KafkaDeliveryReport>) {
        ends.withLock { ends in
            for report in reports {
                ends[report.topic, default: [:]][report.partition] = max(
                    ends[report.topic]?[report.partition] ?? 0,
                    report.offset + 1
                )
            }
        }
    }

    /// The ends of `topics`' partitions.
    func snapshot(of topics: [String]) -> [String: [Int32: Int64]] {
        ends.withLock { ends in ends.filter { topics.contains($0.key) } }
    }
}
