import Foundation
import Testing

@testable import HealthCodeCore

/// The Swift decoder must accept exactly what the JSON Schemas in schemas/ accept. Every example, every
/// canonical re-encoding and a few hundred seeded mutants go through both the decoder and an independent
/// validator (Python `jsonschema`, scripts/schema_validate.py, in the venv made by scripts/bootstrap.sh;
/// override with HEALTHCODE_PYTHON); any disagreement fails.
@Suite("Schema conformance")
struct SchemaConformanceTests {
    struct Example {
        var path: String
        var expectedValid: Bool
        /// For invalid examples, the field path the file is named after (`data.result__not-in-enum.json`).
        var brokenField: String?
    }

    static let examples: [Example] = {
        let base = Repository.root.appendingPathComponent("schemas/examples")
        let enumerator = FileManager.default.enumerator(atPath: base.path)
        var examples: [Example] = []
        while let relative = enumerator?.nextObject() as? String {
            guard relative.hasSuffix(".json") else { continue }
            let parts = relative.split(separator: "/")
            let valid = parts.contains("valid")
            let name = String(parts.last!.dropLast(5))
            let field = valid ? nil : String(name.components(separatedBy: "__")[0])
            examples.append(
                Example(path: "schemas/examples/" + relative, expectedValid: valid, brokenField: field)
            )
        }
        return examples.sorted { $0.path < $1.path }
    }()

    /// Runs the Python validator on `files` (absolute or repository-relative) and returns path → verdict.
    static func pythonVerdicts(_ files: [String]) throws -> [String: (valid: Bool, errors: String)] {
        let environment = ProcessInfo.processInfo.environment
        let python =
            environment["HEALTHCODE_PYTHON"] ?? Repository.root.appendingPathComponent(".local/venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("no Python at \(python): run scripts/bootstrap.sh (or set HEALTHCODE_PYTHON)")
            return [:]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Repository.root.appendingPathComponent("scripts/schema_validate.py").path] + files
        process.currentDirectoryURL = Repository.root
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "schema_validate.py failed: \(errorText)")
        var verdicts: [String: (Bool, String)] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let file = try #require(object["file"] as? String)
            let valid = try #require(object["valid"] as? Bool)
            let messages = (object["errors"] as? [[String: Any]] ?? []).map {
                "\($0["path"] ?? ""): \($0["message"] ?? "")"
            }
            verdicts[file] = (valid, messages.joined(separator: "; "))
        }
        try #require(verdicts.count == Set(files).count, "the validator did not report on every file")
        return verdicts
    }

    static func swiftVerdict(_ bytes: [UInt8]) -> Result<CloudEvent, EventValidationError> {
        Result { () throws(EventValidationError) in try EventDecoder.decode(bytes) }
    }

    @Test func examplesCoverEveryTypeWithThreeValidAndFiveInvalid() {
        for type in EventType.allCases {
            let ofType = Self.examples.filter { $0.path.contains("/\(type.rawValue)/") }
            #expect(ofType.filter(\.expectedValid).count >= 3, "\(type.rawValue) valid examples")
            #expect(ofType.filter { !$0.expectedValid }.count >= 5, "\(type.rawValue) invalid examples")
        }
    }

    @Test func swiftDecoderAndJSONSchemaAgreeOnEveryExample() throws {
        let verdicts = try Self.pythonVerdicts(Self.examples.map(\.path))
        for example in Self.examples {
            let bytes = try Repository.bytes(example.path)
            let swift = Self.swiftVerdict(bytes)
            let python = try #require(verdicts[example.path])
            #expect(python.valid == example.expectedValid, "jsonschema on \(example.path): \(python.errors)")
            switch swift {
            case .success:
                #expect(example.expectedValid, "Swift accepted \(example.path)")
            case .failure(let error):
                #expect(!example.expectedValid, "Swift rejected \(example.path): \(error)")
                #expect(error.fieldPath == example.brokenField, "Swift names the broken field of \(example.path)")
                #expect(!error.reason.isEmpty)
            }
        }
    }

    @Test func canonicalBytesOfValidExamplesRoundTripAndSatisfyTheSchemas() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hc-canonical-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var files: [String] = []
        for (index, example) in Self.examples.enumerated() where example.expectedValid {
            var event = try EventDecoder.decode(try Repository.bytes(example.path))
            event.recordedTime = event.recordedTime ?? event.time + .seconds(90)
            let canonical = event.jsonBytes()
            #expect(try EventDecoder.decode(canonical) == event, "\(example.path) round trip")
            let file = directory.appendingPathComponent("\(index).json").path
            try Data(canonical).write(to: URL(fileURLWithPath: file))
            files.append(file)
        }
        let verdicts = try Self.pythonVerdicts(files)
        for file in files {
            let verdict = try #require(verdicts[file])
            #expect(verdict.valid, "canonical bytes rejected by jsonschema: \(verdict.errors)")
        }
    }

    @Test func swiftDecoderAndJSONSchemaAgreeOnSeededMutants() throws {
        var generator = SplitMix64(seed: 0x5EED_C0DE)
        let valid = try Self.examples.filter(\.expectedValid).map { example in
            try JSONParser.parse(try Repository.bytes(example.path))
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hc-mutants-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var mutants: [(file: String, bytes: [UInt8], description: String)] = []
        for index in 0..<800 {
            let base = valid[Int(generator.next() % UInt64(valid.count))]
            let (mutant, description) = Mutation.apply(to: base, using: &generator)
            var writer = JSONWriter()
            writer.value(mutant)
            let file = directory.appendingPathComponent("m\(index).json").path
            try Data(writer.bytes).write(to: URL(fileURLWithPath: file))
            mutants.append((file, writer.bytes, description))
        }
        let verdicts = try Self.pythonVerdicts(mutants.map(\.file))
        var disagreements: [String] = []
        var accepted = 0
        for mutant in mutants {
            let python = try #require(verdicts[mutant.file])
            let swift = Self.swiftVerdict(mutant.bytes)
            let swiftValid = (try? swift.get()) != nil
            if swiftValid { accepted += 1 }
            if swiftValid != python.valid {
                let swiftSays = (try? swift.get()).map { _ in "accepted" } ?? "\(swift)"
                disagreements.append(
                    "\(mutant.description): jsonschema \(python.valid ? "accepted" : python.errors), Swift \(swiftSays)"
                )
            }
        }
        let listing = disagreements.prefix(10).joined(separator: "\n")
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements:\n\(listing)")
        // Mutants must exercise both verdicts, or the comparison proves little.
        #expect(accepted > 50 && accepted < mutants.count - 50, "accepted \(accepted) of \(mutants.count)")
    }
}

/// Mutations of valid events towards the edges of the contract.
enum Mutation {
    static let palette: [JSONValue] = [
        .string(""), .string("a"), .string("440106"), .string("440100"), .string("440000"), .string("040106"),
        .string("44010"), .string("4401066"), .string("p-1"), .string("p 1"), .string("p-1\n"),
        .string("2020-04-01T00:00:00Z"), .string("2020-04-01T00:00:00.123456Z"),
        .string("2020-04-01T00:00:00.1234567Z"),
        .string("2020-02-29T00:00:00Z"), .string("2021-02-29T00:00:00Z"), .string("2020-04-02T07:00:00+08:00"),
        .string("2020-04-01T00:00:00+08:60"), .string("2020-12-31T23:59:60Z"), .string("2020-04-01T00:00:00"),
        .string("2020-04-20T00:00:00Z"), .string("2020-03-01T00:00:00-00:00"), .string("0001-01-01T00:00:00+01:00"),
        .string("pcr"), .string("antigen"), .string("positive"), .string("negative"), .string("fever"), .string("high"),
        .string("medium"), .string("close-contact"), .string("green"), .string("red"), .string("train"),
        .string("application/json"), .string("urn:x"), .string("https://a.example/s"), .string("1.0"),
        .string("hc.exposure.v1"), .string("hc.risk-area.v1"), .string("hc.retraction.v1"),
        .string(String(repeating: "x", count: 128)), .string(String(repeating: "x", count: 129)),
        .string(String(repeating: "x", count: 256)), .string(String(repeating: "x", count: 257)),
        .string(String(repeating: "é", count: 128)), .string(String(repeating: "é", count: 129)),
        .string("a\tb"), .string("a\nb"), .string("\u{7F}"), .string("事件"),
        .string("00-" + String(repeating: "a", count: 32) + "-" + String(repeating: "b", count: 16) + "-01"),
        .number(29.99), .number(30), .number(37.3), .number(45), .number(45.0001), .number(-1), .number(0),
        .bool(true), .bool(false), .null, .array([]), .array([.string("fever")]),
        .array([.string("fever"), .string("fever")]), .array([.string("cough"), .string("fatigue")]),
        .object([]), .object([JSONMember(key: "a", value: .number(1))]),
    ]

    static let unknownKeys = ["extra", "Data", "recordedTime", "colour", "data_base64"]

    static func apply(to value: JSONValue, using generator: inout SplitMix64) -> (JSONValue, String) {
        guard case .object(var members) = value,
            let dataIndex = members.firstIndex(where: { $0.key == "data" }),
            case .object(var data) = members[dataIndex].value
        else { return (value, "unchanged") }
        let inData = generator.next() % 2 == 0 && !data.isEmpty
        var target = inData ? data : members
        let prefix = inData ? "data." : ""
        let operation = generator.next() % 10
        let description: String
        switch operation {
        case 0:
            let index = Int(generator.next() % UInt64(target.count))
            description = "delete \(prefix)\(target[index].key)"
            target.remove(at: index)
        case 1:
            let key = unknownKeys[Int(generator.next() % UInt64(unknownKeys.count))]
            description = "add \(prefix)\(key)"
            if !target.contains(where: { $0.key == key }) { target.append(JSONMember(key: key, value: .string("x"))) }
        default:
            let index = Int(generator.next() % UInt64(target.count))
            let replacement = palette[Int(generator.next() % UInt64(palette.count))]
            description = "set \(prefix)\(target[index].key) = \(replacement)"
            target[index].value = replacement
        }
        if inData {
            data = target
            members[dataIndex].value = .object(data)
        } else {
            members = target
        }
        return (.object(members), description)
    }
}

extension JSONWriter {
    /// Serialises a parsed value (tests only; the core writes events field by field).
    mutating func value(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): flag ? raw("true") : raw("false")
        case .number(let number): self.number(number)
        case .string(let text): string(text)
        case .array(let elements):
            raw("[")
            for (index, element) in elements.enumerated() {
                if index > 0 { raw(",") }
                self.value(element)
            }
            raw("]")
        case .object(let members):
            raw("{")
            for (index, member) in members.enumerated() {
                if index > 0 { raw(",") }
                string(member.key)
                raw(":")
                self.value(member.value)
            }
            raw("}")
        }
    }
}
