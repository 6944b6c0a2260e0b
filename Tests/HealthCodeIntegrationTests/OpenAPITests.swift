import Foundation
import HealthCodeAPI
import HealthCodeGateway
import HealthCodePostgres
import HealthCodeTestSupport
import Testing

/// The OpenAPI documents match the services: the served copies equal the repository's, and
/// schemathesis finds no 5xx and no response that violates them against the live services.
@Suite struct OpenAPIDocumentTests {
    @Test("the served documents are the ones kept in openapi/, and both are OpenAPI 3.1")
    func documentsInRepository() throws {
        for (name, served) in [("gateway", GatewayOpenAPI.document), ("api", QueryAPIOpenAPI.document)] {
            let file = LocalInfrastructure.repositoryRoot.appendingPathComponent("openapi/\(name).json")
            let kept = try String(contentsOf: file, encoding: .utf8)
            #expect(kept == served, "openapi/\(name).json differs from the document the service serves")
            let json = try JSONSerialization.jsonObject(with: Data(served.utf8)) as? [String: Any]
            #expect(json?["openapi"] as? String == "3.1.0")
        }
    }
}

@Suite(.enabled(if: LocalInfrastructure.serversTestsEnabled), .serialized, .timeLimit(.minutes(5)))
struct SchemathesisTests {
    /// Runs schemathesis against `base`; returns its exit status and its output's tail.
    func schemathesis(_ base: String, headers: [String]) throws -> (status: Int32, output: String) {
        let executable = LocalInfrastructure.repositoryRoot.appendingPathComponent(".local/venv/bin/schemathesis")
        let process = Process()
        process.executableURL = executable
        process.arguments =
            [
                "run", base + "/openapi.json",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,"
                    + "response_schema_conformance,response_headers_conformance",
                "--max-examples", "20", "--max-time", "25", "--seed", "2020", "--workers", "1",
                "--suppress-health-check", "all",
            ] + headers.flatMap { ["-H", $0] }
        var environment = ProcessInfo.processInfo.environment
        environment["SCHEMATHESIS_TELEMETRY"] = "false"
        process.environment = environment
        // schemathesis keeps a cache in its working directory: keep it out of the repository.
        process.currentDirectoryURL = FileManager.default.temporaryDirectory
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, String(output.suffix(4000)))
    }

    @Test("schemathesis: no 5xx and no response outside the documents, for the gateway and the API")
    func fuzz() async throws {
        let backbone = try await TestBackbone.make()
        let analystKey = AnalystAccess.generateKey()
        try await backbone.withDatabase { client in
            try await AnalystStore(client: client, logger: testLogger())
                .add(id: "fuzzer", apiKeySHA256: AnalystAccess.hash(analystKey))
        }
        try await backbone.withRunningBackbone { gateway, api, _ in
            let publisher = TestBackbone.apiKey(of: TestBackbone.testPublishers[0])
            let gatewayRun = try schemathesis(gateway, headers: ["Authorization: Bearer \(publisher)"])
            #expect(gatewayRun.status == 0, "\(gatewayRun.output)")
            let apiRun = try schemathesis(
                api,
                headers: ["Authorization: Bearer \(analystKey)", "X-HC-Purpose: conformance testing"]
            )
            #expect(apiRun.status == 0, "\(apiRun.output)")
        }
    }
}
