import Foundation

/// The reference rule set's file (`projections/rules/reference-v1.json`) and the longer variant the tests of
/// rule-set changes use.
public enum ReferenceRules {
    /// The file, byte for byte.
    public static func file() throws -> [UInt8] {
        try Array(
            Data(
                contentsOf: LocalInfrastructure.repositoryRoot.appendingPathComponent(
                    "projections/rules/reference-v1.json"
                )
            )
        )
    }

    /// The reference rules with every 14-day duration made 28 days, as version `version`: a rule set whose
    /// close contacts (and the rest) count twice as long.
    public static func longer(version: String = "1.1.0") throws -> [UInt8] {
        let text = String(decoding: try file(), as: UTF8.self)
        return Array(
            text.replacingOccurrences(of: "\"P14D\"", with: "\"P28D\"")
                .replacingOccurrences(of: "\"version\": \"1.0.0\"", with: "\"version\": \"\(version)\"").utf8
        )
    }
}
