extension CloudEvent {
    /// Whether `subject` is an area code rather than a person: risk-area designations, and
    /// retractions whose subject is an area code (they retract designations).
    ///
    /// The gateway leaves such subjects as they are instead of pseudonymising them, and the
    /// projector archives such events as area events. Person identifiers are never 6-digit numbers.
    public var subjectIsAreaCode: Bool {
        switch payload {
        case .riskArea: true
        case .retraction: AreaCode(subject) != nil
        default: false
        }
    }
}
