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

/// Where a person was at an instant, as an event tells (docs/POLICY.md §3.1).
public struct Presence: Sendable, Hashable {
    public var area: AreaCode
    public var at: Instant

    public init(area: AreaCode, at: Instant) {
        self.area = area
        self.at = at
    }
}

extension CloudEvent {
    /// The presences this event records: a journey's origin at departure and destination at arrival
    /// (however late the arrival), a declaration's location at its time. The policy decides which of
    /// them count at an evaluation instant; this is what a projector indexes to find the people a
    /// later designation concerns.
    public var presences: [Presence] {
        switch payload {
        case .travel(let travel):
            [Presence(area: travel.from, at: time), Presence(area: travel.to, at: travel.arrivedAt)]
        case .declaration(let declaration):
            declaration.location.map { [Presence(area: $0, at: time)] } ?? []
        default:
            []
        }
    }
}

extension AreaCode {
    /// The numeric range of the codes this area covers: a province every code with its first two
    /// digits, a city every code with its first four, a district itself.
    public var coveredCodes: ClosedRange<Int32> {
        switch level {
        case .province: value...(value + 9_999)
        case .city: value...(value + 99)
        case .district: value...value
        }
    }
}
