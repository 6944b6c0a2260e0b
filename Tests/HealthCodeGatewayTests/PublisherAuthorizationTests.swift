import Foundation
import HTTPTypes
import HealthCodeCore
import HealthCodeKafka
import HealthCodeTestSupport
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import NIOCore
import Synchronization
import Testing

@testable import HealthCodeGateway

/// Publisher identities and scopes, duplicates, rate limits and load shedding at the gateway.
@Suite struct PublisherAuthorizationTests {
    let gateway = GatewayTests()

    func exposure(id: String, source: String = "urn:hc:publisher:cdc") -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"hc.exposure.v1","subject":"ID-1","time":"2020-04-03T08:00:00Z","data":{"kind":"close-contact"}}"#
    }

    func retraction(id: String, retracts: String) -> String {
        #"{"specversion":"1.0","id":"\#(id)","source":"urn:hc:publisher:gd","type":"hc.retraction.v1","subject":"ID-1","time":"2020-04-03T09:00:00Z","data":{"retracts":"\#(retracts)","reason":"wrong sample"}}"#
    }

    func assertion(
        audience: String = GatewayConfiguration().effectiveAssertionAudience,
        issuedAt: Date = Date(),
        lifetime: Duration = .seconds(60)
    ) async throws -> String {
        "Bearer "
            + (try await ClientAssertion.sign(
                publisher: "urn:hc:publisher:cdc",
                audience: audience,
                privateKey: GatewayTests.cdcKey,
                issuedAt: issuedAt,
                lifetime: lifetime
            ))
    }

    @Test("no credential, an unknown API key or a forged assertion is 401 with WWW-Authenticate")
    func unauthenticated() async throws {
        try await gateway.withGateway { client, _, _ in
            let (missing, _, response) = try await gateway.post(client, gateway.event(id: "a"), authorization: nil)
            #expect(missing == .unauthorized)
            #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            let unknown = "Bearer hcpk_" + String(repeating: "0", count: 64)
            #expect(try await gateway.post(client, gateway.event(id: "a"), authorization: unknown).0 == .unauthorized)
            let otherKey = ES256PrivateKey()
            let forged = try await ClientAssertion.sign(
                publisher: "urn:hc:publisher:cdc",
                audience: GatewayConfiguration().effectiveAssertionAudience,
                privateKey: otherKey
            )
            #expect(
                try await gateway.post(client, exposure(id: "x"), authorization: "Bearer \(forged)").0 == .unauthorized
            )
        }
    }

    @Test("an ES256 client assertion authenticates; wrong audience, expired or too long-lived ones do not")
    func clientAssertions() async throws {
        try await gateway.withGateway { client, _, _ in
            let (ok, answer, _) = try await gateway.post(
                client,
                exposure(id: "e1"),
                authorization: try await assertion()
            )
            #expect(ok == .accepted)
            #expect(answer?.accepted == 1)
            for bad in [
                try await assertion(audience: "urn:hc:other-gateway"),
                try await assertion(issuedAt: Date().addingTimeInterval(-600)),
                try await assertion(lifetime: .seconds(3600)),
            ] {
                #expect(try await gateway.post(client, exposure(id: "e2"), authorization: bad).0 == .unauthorized)
            }
        }
    }

    @Test("a source that is not the publisher, or a type it may not publish, is 403 with the reason per event")
    func scopes() async throws {
        try await gateway.withGateway { client, _, _ in
            let (wrongSource, answer, _) = try await gateway.post(
                client,
                exposure(id: "s1", source: "urn:hc:publisher:gd"),
                authorization: try await assertion()
            )
            #expect(wrongSource == .forbidden)
            #expect(answer?.results.first?.errors?.first?.code == "forbidden-source")

            // The health bureau may publish test results, not exposures.
            let (wrongType, typeAnswer, _) = try await gateway.post(
                client,
                exposure(id: "t1", source: "urn:hc:publisher:gd")
            )
            #expect(wrongType == .forbidden)
            #expect(typeAnswer?.results.first?.errors?.first?.code == "forbidden-type")

            // A mixed batch still appends what is allowed, and names what was refused.
            let (mixed, mixedAnswer, _) = try await gateway.post(
                client,
                gateway.event(id: "ok") + "\n" + exposure(id: "no", source: "urn:hc:publisher:gd")
            )
            #expect(mixed == .accepted)
            #expect(mixedAnswer?.results.map(\.status) == ["accepted", "rejected"])
        }
    }

    @Test("retracting another publisher's archived event is 403; retracting one's own is accepted")
    func retractions() async throws {
        let asked = Mutex<[String]>([])
        let targets = InMemoryRetractionTargets { id, subject, isArea in
            asked.withLock { $0.append(subject) }
            #expect(!isArea)
            return id == "theirs" ? ["urn:hc:publisher:other"] : ["urn:hc:publisher:gd"]
        }
        try await gateway.withGateway(retractionTargets: targets) { client, _, _ in
            let (theirs, answer, _) = try await gateway.post(client, retraction(id: "r1", retracts: "theirs"))
            #expect(theirs == .forbidden)
            #expect(answer?.results.first?.errors?.first?.code == "forbidden-retraction")
            let (mine, _, _) = try await gateway.post(client, retraction(id: "r2", retracts: "mine"))
            #expect(mine == .accepted)
        }
        // The archive is asked with the pseudonym, never the raw identifier.
        #expect(asked.withLock { $0 }.allSatisfy(Pseudonymizer.isPseudonym))
    }

    @Test("a revoked publisher is refused")
    func revoked() async throws {
        let revokedRegistry: (GatewayConfiguration) -> PublisherRegistry = { configuration in
            PublisherRegistry(
                directory: InMemoryPublisherDirectory { try GatewayTests.publishers(revoked: true) },
                assertionUses: InMemoryAssertionUses(),
                configuration: configuration,
                logger: Logger(label: "test")
            )
        }
        let gateway = gateway
        try await gateway.withGateway(registry: revokedRegistry) { client, _, _ in
            let (status, _, _) = try await gateway.post(client, gateway.event(id: "a"))
            #expect(status == .unauthorized)
        }
    }

    @Test("an event sent again is answered duplicate and reaches Kafka once")
    func duplicates() async throws {
        try await gateway.withGateway { client, _, _ in
            let batch = (0..<5).map { gateway.event(id: "d\($0)", subject: "ID-\($0)") }.joined(separator: "\n")
            let (first, firstAnswer, _) = try await gateway.post(client, batch)
            #expect(first == .accepted)
            #expect(firstAnswer?.accepted == 5)
            let (again, answer, _) = try await gateway.post(client, batch + "\n" + gateway.event(id: "d5"))
            #expect(again == .accepted)
            #expect(answer?.duplicate == 5)
            #expect(answer?.accepted == 1)
            #expect(answer?.results.prefix(5).allSatisfy { $0.status == "duplicate" && $0.offset == nil } == true)
            // The same event twice in one batch: the second is the duplicate.
            let (twice, twiceAnswer, _) = try await gateway.post(
                client,
                gateway.event(id: "t") + "\n" + gateway.event(id: "t")
            )
            #expect(twice == .accepted)
            #expect(twiceAnswer?.results.map(\.status) == ["accepted", "duplicate"])
        }
    }

    @Test("a publisher over its rate gets 429 with Retry-After; others are unaffected")
    func rateLimits() async throws {
        var configuration = GatewayConfiguration()
        // One token a second and a second batch of ten: the bucket would need ten seconds between the
        // two requests to refill, which a slow or loaded machine does not reach.
        configuration.publisherEventsPerSecond = 1
        configuration.publisherBurstEvents = 10
        configuration.maximumBatchEvents = 10
        try await gateway.withGateway(configuration: configuration) { client, _, _ in
            let ten = (0..<10).map { gateway.event(id: "r\($0)") }.joined(separator: "\n")
            #expect(try await gateway.post(client, ten).0 == .accepted)
            let again = (0..<10).map { gateway.event(id: "over\($0)") }.joined(separator: "\n")
            let (limited, _, response) = try await gateway.post(client, again)
            #expect(limited == .tooManyRequests)
            #expect(response.headers[.retryAfter].flatMap(Int.init).map { $0 >= 1 } == true)
            let (other, _, _) = try await gateway.post(
                client,
                exposure(id: "cdc"),
                authorization: try await assertion()
            )
            #expect(other == .accepted)
        }
    }

    @Test("token buckets refill at the publisher's rate and say how long until a batch fits")
    func buckets() {
        var state = PublisherRateLimits.State(eventsPerSecond: 100, burst: 100)
        let start = ContinuousClock.now
        #expect(state.take(100, for: "a", now: start) == .admit)
        #expect(state.take(50, for: "a", now: start) == .reject(retryAfter: .milliseconds(500)))
        #expect(state.take(50, for: "b", now: start) == .admit)
        #expect(state.take(50, for: "a", now: start + .milliseconds(500)) == .admit)
    }

    @Test("the recent-event window forgets its oldest keys first")
    func recentWindow() {
        var state = RecentEvents.State(capacity: 2)
        state.insert("a")
        state.insert("b")
        state.insert("c")
        #expect(!state.contains("a"))
        #expect(state.contains("b") && state.contains("c"))
    }
}
