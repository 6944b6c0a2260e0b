/// A setting outside what its component allows, refused before anything starts.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The component whose configuration it is, e.g. `gateway`.
    public var component: String
    /// The setting's name in its configuration, e.g. `maximumBatchEvents`.
    public var setting: String
    /// What it must be, e.g. "must be at least 1".
    public var requirement: String

    public init(component: String, setting: String, requirement: String) {
        self.component = component
        self.setting = setting
        self.requirement = requirement
    }

    public var description: String { "\(component) setting \(setting) \(requirement)" }

    /// Throws for the first check that does not hold.
    public static func check(
        _ component: String,
        _ checks: [(holds: Bool, setting: String, requirement: String)]
    ) throws(ConfigurationError) {
        for check in checks where !check.holds {
            throw ConfigurationError(component: component, setting: check.setting, requirement: check.requirement)
        }
    }
}
