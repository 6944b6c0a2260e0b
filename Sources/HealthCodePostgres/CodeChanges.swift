import HealthCodeCore

/// How a change of materialised codes is announced: a PostgreSQL notification on ``channel``, sent by
/// the transaction that writes the codes and so delivered only when, and as soon as, it commits.
/// ``CodeChangeListener`` hears them and tells a ``CodeChangeObserver`` (the query API's code cache).
///
/// A payload is the changed pseudonyms separated by single spaces, at most ``maximumPayloadBytes``
/// long; ``flushAll`` (sent when `person_code` is truncated) drops every kept code.
public enum CodeChanges {
    /// The notification channel.
    public static let channel = "hc_code_changes"
    /// The payload that stands for every code (migration 0009's truncate trigger sends it).
    public static let flushAll = "*"
    /// Longest payload: PostgreSQL refuses payloads of 8000 bytes or more.
    public static let maximumPayloadBytes = 7900

    /// `subjects` split into as few payloads as fit.
    public static func payloads(_ subjects: some Sequence<String>) -> [String] {
        var payloads: [String] = []
        var current = ""
        for subject in subjects {
            if !current.isEmpty, current.utf8.count + 1 + subject.utf8.count > maximumPayloadBytes {
                payloads.append(current)
                current = ""
            }
            if !current.isEmpty { current.append(" ") }
            current.append(subject)
        }
        if !current.isEmpty { payloads.append(current) }
        return payloads
    }

    /// What `payload` announces.
    public static func change(in payload: String) -> CodeChange {
        payload == flushAll ? .everything : .subjects(payload.split(separator: " "))
    }
}
