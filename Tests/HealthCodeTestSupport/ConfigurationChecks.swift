import HealthCodeCore

/// Applies each case's change to `base` and validates: what each change was refused with (`nil` if it
/// was accepted, or refused with another error than ``ConfigurationError``), next to the setting the
/// case expects to be named.
public func refusals<Configuration>(
    of base: Configuration,
    _ cases: [(setting: String, change: (inout Configuration) -> Void)],
    validate: (Configuration) throws -> Void
) -> [(expected: String, refusal: ConfigurationError?)] {
    cases.map { setting, change in
        var configuration = base
        change(&configuration)
        do {
            try validate(configuration)
            return (setting, nil)
        } catch {
            return (setting, error as? ConfigurationError)
        }
    }
}
