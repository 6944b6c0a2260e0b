import Foundation
import HealthCodeBackbone
import HealthCodeBenchmarks
import HealthCodeCore
import HealthCodeKafka
import HealthCodePostgres
import HealthCodeProjector
import HealthCodeTestSupport
import NIOCore
import PostgresNIO
import Testing

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(3)))
struct DeadLetterTests {
    @Test(
        "an undecodable message is parked with its bytes and reason; the partition goes on; replay applies fixed ones"
    )
    func parksAndReplays() async throws {
        let backbone = try await TestBackbone.make(partitions: 1)
        let workload = ProjectorWorkload(people: 50, eventsPerPerson: 4, anchor: Instant.now())
        var events = workload.designations(midway: false)
        for (index, subject) in workload.subjects.enumerated() {
            events.append(contentsOf: workload.events(ofPerson: index, subject: subject))
        }
        let garbage: [UInt8] = Array(#"{"specversion":"1.0","id":"broken"#.utf8)
        var logger = testLogger()
        logger.logLevel = .error
        let producer = try KafkaProducer(
            configuration: KafkaProducerConfiguration(bootstrapServers: backbone.topic.bootstrapServers),
            logger: logger
        )
        try await withServices([producer]) {
            let half = events.count / 2
            var messages = events[..<half].map {
                KafkaOutgoingMessage(topic: backbone.topic.topic, key: Array($0.subject.utf8), value: $0.jsonBytes())
            }
            messages.append(KafkaOutgoingMessage(topic: backbone.topic.topic, key: nil, value: garbage))
            messages += events[half...].map {
                KafkaOutgoingMessage(topic: backbone.topic.topic, key: Array($0.subject.utf8), value: $0.jsonBytes())
            }
            _ = try await producer.send(messages)
        }
        let total = events.count + 1
        try await backbone.runProjector(
            until: { try await count($0, "SELECT coalesce(sum(next_offset), 0)::int8 FROM consumer_offsets") >= total },
            gracefully: true
        )
        let personEvents = events.count - 1
        let archived = try await backbone.withDatabase { try await count($0, "SELECT count(*) FROM event_archive") }
        #expect(archived == personEvents, "every valid event after the bad one was applied")

        let letters = try await backbone.withDatabase { client in
            try await ProjectionStore(client: client, logger: testLogger()).deadLetters(
                includeReplayed: false,
                limit: 10
            )
        }
        #expect(letters.count == 1)
        #expect(letters.first?.letter.value == garbage)
        #expect(letters.first?.letter.reason.contains("malformed-json") == true)
        #expect(letters.first?.letter.offset == Int64(events.count / 2))

        // The garbage stays garbage; a letter whose bytes are valid now (the cause was fixed) applies once.
        let fixed = CloudEvent(
            id: "late-fix",
            source: "urn:hc:publisher:test-bureau",
            subject: workload.subjects[0],
            time: workload.anchor,
            recordedTime: workload.anchor,
            payload: .testResult(TestResult(test: .pcr, result: .positive, lab: "lab"))
        )
        try await backbone.withDatabase { client in
            try await client.query(
                """
                INSERT INTO dead_letters (kafka_topic, kafka_partition, kafka_offset, message_value, reason)
                VALUES (\(backbone.topic.topic), 0, 999999, \(ByteBuffer(bytes: fixed.jsonBytes())), 'unsupported-type')
                """,
                logger: testLogger()
            )
        }
        let outcomes = try await backbone.withDatabase { client in
            try await Projector.deadLetterReplay(
                storage: ProjectionStore(client: client, logger: testLogger()),
                ruleSet: backbone.ruleSet,
                logger: testLogger()
            )
            .replay()
        }
        #expect(outcomes.count == 2)
        #expect(outcomes.filter { $0.failure == nil }.count == 1)
        let again = try await backbone.withDatabase { client in
            try await Projector.deadLetterReplay(
                storage: ProjectionStore(client: client, logger: testLogger()),
                ruleSet: backbone.ruleSet,
                logger: testLogger()
            )
            .replay()
        }
        #expect(again.count == 1, "a replayed letter is not replayed twice")
        let status = try await backbone.withDatabase { client -> String? in
            for try await status in try await client.query(
                "SELECT status FROM person_code WHERE subject = \(workload.subjects[0])",
                logger: testLogger()
            ).decode(String.self) {
                return status
            }
            return nil
        }
        #expect(status == "red", "the replayed positive PCR turned the person red")
        #expect(
            try await backbone.withDatabase { try await count($0, "SELECT count(*) FROM event_archive") }
                == personEvents + 1
        )
    }
}
