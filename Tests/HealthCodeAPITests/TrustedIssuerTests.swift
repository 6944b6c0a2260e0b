import Foundation
import HealthCodeAPI
import HealthCodeCore
import HealthCodeTestSupport
import JWTKit
import Logging
import Testing

/// Other regions' key sets: read over https or from files only, refreshed, and one region that does
/// not answer neither blocks start-up nor the others.
@Suite struct TrustedIssuerTests {
    @Test("key set locations: https, files and loopback http are accepted; plain http elsewhere is refused")
    func locations() throws {
        #expect(
            try JWKSLocation("https://keys.sh.example/.well-known/jwks.json")
                == .https("https://keys.sh.example/.well-known/jwks.json")
        )
        #expect(try JWKSLocation("/etc/hc/sh-jwks.json") == .file("/etc/hc/sh-jwks.json"))
        #expect(
            try JWKSLocation("http://127.0.0.1:8081/.well-known/jwks.json")
                == .loopbackHTTP("http://127.0.0.1:8081/.well-known/jwks.json")
        )
        for refused in ["http://keys.sh.example/jwks.json", "HTTP://10.0.0.1/jwks", "ftp://keys/jwks", "", "https://"] {
            let error = #expect(throws: ConfigurationError.self, "\(refused)") { try JWKSLocation(refused) }
            #expect(error?.setting == "trustedIssuers")
        }
    }

    @Test("a file-based region verifies at once and after rotation; an unreachable https region is keys-unavailable")
    func fileAndUnreachableRegions() async throws {
        var logger = Logger(label: "trusted-issuer-tests")
        logger.logLevel = .critical
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent(LocalInfrastructure.uniqueName("hc_trusted"))
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let iterations = 1000
        let first = CodeSigningKey(kid: "sh-1", key: ES256PrivateKey())
        let sh = try await CodeIssuer(
            issuer: "urn:hc:issuer:sh",
            keys: [first],
            lifetime: .seconds(300),
            bindingIterations: iterations
        )
        let far = try await CodeIssuer(
            issuer: "urn:hc:issuer:far",
            keys: [CodeSigningKey(kid: "far-1", key: ES256PrivateKey())],
            lifetime: .seconds(300),
            bindingIterations: iterations
        )
        let jwksFile = directory.appendingPathComponent("sh.json")
        try sh.jwks.write(to: jwksFile, atomically: true, encoding: .utf8)
        let trustFile = directory.appendingPathComponent("trusted.json")
        // Port 1 on the loopback refuses connections: a region that does not answer.
        let unreachable = "https://127.0.0.1:1/.well-known/jwks.json"
        try #"{"urn:hc:issuer:sh":"\#(jwksFile.path)","urn:hc:issuer:far":"\#(unreachable)"}"#
            .write(to: trustFile, atomically: true, encoding: .utf8)

        var configuration = QueryAPIConfiguration()
        configuration.signingKeysDirectory = directory.appendingPathComponent("keys").path
        configuration.trustedIssuersFile = trustFile.path
        configuration.holderBindingIterations = iterations
        configuration.minimumHolderBindingIterations = iterations
        let stores = InMemoryQueryStores()
        let (api, _) = try await QueryAPIServer.assemble(
            configuration: configuration,
            stores: QueryAPIStores(
                codes: stores,
                states: stores,
                records: stores,
                analysts: stores,
                platforms: stores,
                areaEvents: stores,
                ruleSets: stores
            ),
            ruleSet: try RuleSet.decode(
                Array(
                    try Data(
                        contentsOf: LocalInfrastructure.repositoryRoot
                            .appendingPathComponent("projections/rules/reference-v1.json")
                    )
                )
            ),
            pseudonymizer: try Pseudonymizer(hexKey: Pseudonymizer.generateHexKey()),
            createSigningKey: true,
            logger: logger
        )
        // Start-up did not wait for the region behind a URL: assembled, its keys are not there yet. (Not
        // timed: under a parallel test run a wall-clock bound measures the machine, not the design.)
        let verifier = api.verifier
        let shCode = try await sh.sign(holder: "A1", status: .green, issuedAt: .now(), validUntil: nil)
        let farCode = try await far.sign(holder: "A1", status: .green, issuedAt: .now(), validUntil: nil)
        #expect(try await verifier.verify(shCode.token, holder: "A1").get().holderChecked)
        #expect(await verifier.verify(farCode.token, holder: "A1").failureCode == "keys-unavailable")
        #expect(!verifier.keySets.isAvailable("urn:hc:issuer:far"))

        // Shanghai rotates; the refresh picks the new key up, and the unreachable region is reported.
        let second = CodeSigningKey(kid: "sh-2", key: ES256PrivateKey())
        let rotated = try await CodeIssuer(
            issuer: "urn:hc:issuer:sh",
            keys: [first, second],
            lifetime: .seconds(300),
            bindingIterations: iterations
        )
        try rotated.jwks.write(to: jwksFile, atomically: true, encoding: .utf8)
        let newCode = try await rotated.sign(holder: "A1", status: .red, issuedAt: .now(), validUntil: nil)
        #expect(await verifier.verify(newCode.token, holder: "A1").failureCode == "unknown-key", "not yet refreshed")
        let refresher = TrustedKeyRefresher(
            locations: try JWKSLocation.trustFile(trustFile.path),
            keySets: verifier.keySets,
            interval: .seconds(300),
            retryDelay: .seconds(10),
            fetchTimeout: .seconds(2),
            logger: logger
        )
        #expect(await refresher.refreshAll() == ["urn:hc:issuer:far"])
        #expect(try await verifier.verify(newCode.token, holder: "A1").get().claims.status == "red")
        #expect(await verifier.verify(farCode.token, holder: "A1").failureCode == "keys-unavailable")
        // An issuer in no trust file is untrusted, not unavailable.
        let other = try await CodeIssuer(
            issuer: "urn:hc:issuer:other",
            keys: [CodeSigningKey(kid: "o-1", key: ES256PrivateKey())],
            lifetime: .seconds(300),
            bindingIterations: iterations
        )
        let otherCode = try await other.sign(holder: "A1", status: .green, issuedAt: .now(), validUntil: nil)
        #expect(await verifier.verify(otherCode.token, holder: "A1").failureCode == "untrusted-issuer")
    }

    @Test("a trust file naming a plain-http region on another machine is refused before anything starts")
    func plainHTTPRefused() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            LocalInfrastructure.uniqueName("hc_trust")
        )
        defer { try? FileManager.default.removeItem(at: file) }
        try #"{"urn:hc:issuer:sh":"http://keys.sh.example/jwks.json"}"#.write(
            to: file,
            atomically: true,
            encoding: .utf8
        )
        #expect(throws: ConfigurationError.self) { try JWKSLocation.trustFile(file.path) }
    }
}
