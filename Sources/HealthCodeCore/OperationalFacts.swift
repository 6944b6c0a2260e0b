// The operational facts the projector keeps in PostgreSQL for the operators' dashboard (migration 0018): the
// code census, publisher feeds and projector reports. Reading them costs a few small rows, never a scan of
// every person.

/// Which rows of the operational counters (the code census, publisher ingest) a projector transaction adds to.
///
/// A counter row that every transaction updated would make concurrent transactions wait on each other, so each
/// count is kept per shard and read as the sum over shards.
public enum CounterShard: Sendable, Hashable {
    /// A batch of this Kafka partition: only the partition's owner writes its rows, one transaction at a time,
    /// so transactions of different partitions never touch the same rows.
    case partition(Int32)
    /// A transaction of no partition (the re-evaluator, a dead-letter replay): one of a few shared shards,
    /// picked by the database connection, so that concurrent ones rarely share one.
    case shared

    /// The partition, `nil` for a shared shard (the database picks one).
    public var partition: Int32? {
        switch self {
        case .partition(let partition): partition
        case .shared: nil
        }
    }
}

/// How many current codes of each colour there are in one area: the dashboard's census.
public struct CodeCensus: Sendable, Equatable {
    /// The area the codes were counted in: each person's last known area (``PersonState/lastKnownArea``)
    /// when their code was last written; `nil` for people whose area is unknown.
    public var area: AreaCode?
    public var green: Int
    public var yellow: Int
    public var red: Int

    public init(area: AreaCode?, green: Int = 0, yellow: Int = 0, red: Int = 0) {
        self.area = area
        self.green = green
        self.yellow = yellow
        self.red = red
    }

    /// All codes of the area.
    public var total: Int { green + yellow + red }

    /// The count of `status`.
    public subscript(status: CodeStatus) -> Int {
        get {
            switch status {
            case .green: green
            case .yellow: yellow
            case .red: red
            }
        }
        set {
            switch status {
            case .green: green = newValue
            case .yellow: yellow = newValue
            case .red: red = newValue
            }
        }
    }

    /// Folds counter rows (any number per area and colour: one per shard) into one census per area, areas
    /// ascending with the unknown area first; an area whose counts add up to nothing is left out.
    public static func fold(_ rows: some Sequence<(area: AreaCode?, status: CodeStatus, codes: Int)>) -> [CodeCensus] {
        var areas: [AreaCode?: CodeCensus] = [:]
        for row in rows {
            areas[row.area, default: CodeCensus(area: row.area)][row.status] += row.codes
        }
        return areas.values.filter { $0.green != 0 || $0.yellow != 0 || $0.red != 0 }.sorted {
            switch ($0.area, $1.area) {
            case (nil, _): $1.area != nil
            case (_, nil): false
            case (let lhs?, let rhs?): lhs < rhs
            }
        }
    }
}

/// The census's totals at one instant (a sample taken once a minute).
public struct CodeCensusSample: Sendable, Equatable {
    /// The minute the sample was taken in (its start).
    public var at: Instant
    public var green: Int
    public var yellow: Int
    public var red: Int

    public init(at: Instant, green: Int, yellow: Int, red: Int) {
        self.at = at
        self.green = green
        self.yellow = yellow
        self.red = red
    }
}

/// The census per area at one instant (a sample taken once an hour).
public struct AreaCensusSample: Sendable, Equatable {
    /// The minute the sample was taken in (its start).
    public var at: Instant
    /// One census per area, ordered as ``CodeCensus/fold(_:)`` orders them.
    public var areas: [CodeCensus]

    public init(at: Instant, areas: [CodeCensus]) {
        self.at = at
        self.areas = areas
    }
}

/// How many events of one publisher a projector transaction newly archived: its contribution to the
/// publisher's ingest rate and freshness.
public struct PublisherIngest: Sendable, Equatable {
    /// The publisher's id: the events' CloudEvents `source` (`publisher.publisher_id`).
    public var publisher: String
    public var events: Int

    public init(publisher: String, events: Int) {
        self.publisher = publisher
        self.events = events
    }

    /// The events per publisher of `sources` (one per newly archived event), ordered by publisher byte-wise:
    /// the order in which a transaction writes (and locks) the publishers' rows, the same in every transaction.
    public static func tally(_ sources: some Sequence<String>) -> [PublisherIngest] {
        var counts: [String: Int] = [:]
        for source in sources { counts[source, default: 0] += 1 }
        return counts.map { PublisherIngest(publisher: $0.key, events: $0.value) }
            .sorted { $0.publisher.utf8.lexicographicallyPrecedes($1.publisher.utf8) }
    }
}

/// A publisher's feed as the dashboard shows it: how fresh it is and how fast it arrives.
public struct PublisherFeed: Sendable, Equatable {
    /// The publisher's id (the events' `source`).
    public var publisher: String
    /// When its latest event was archived (the projector's transaction began), however long ago.
    public var lastEventAt: Instant
    /// Events archived per minute, ascending; minutes with none are absent.
    public var minutes: [IngestMinute]

    public init(publisher: String, lastEventAt: Instant, minutes: [IngestMinute]) {
        self.publisher = publisher
        self.lastEventAt = lastEventAt
        self.minutes = minutes
    }
}

/// Events of one publisher archived in one minute.
public struct IngestMinute: Sendable, Equatable {
    /// The minute's start.
    public var minute: Instant
    public var events: Int

    public init(minute: Instant, events: Int) {
        self.minute = minute
        self.events = events
    }
}

/// A running projector's status as its `/health` reports it, as it last reported it to PostgreSQL.
public struct ProjectorReport: Sendable, Equatable {
    /// Who reported: `<group>@<host>:<pid>`.
    public var member: String
    /// When the projector took the status (its clock); a report much older than the reporting interval is from a
    /// projector that stopped or cannot reach the database.
    public var reportedAt: Instant
    /// `progressing`, `idle`, `not-progressing`, `log-replaced`, `no-partitions` or `reevaluation-failing`.
    public var state: String
    /// Messages known to wait in the projector's partitions.
    public var lag: Int64
    /// Seconds from its last committed batch to the report; `nil` before the first.
    public var secondsSinceLastCommit: Double?
    public var assignedPartitions: Int
    /// Whether no operator needs to act (what `/health` answers 200 for).
    public var healthy: Bool

    public init(
        member: String,
        reportedAt: Instant,
        state: String,
        lag: Int64,
        secondsSinceLastCommit: Double?,
        assignedPartitions: Int,
        healthy: Bool
    ) {
        self.member = member
        self.reportedAt = reportedAt
        self.state = state
        self.lag = lag
        self.secondsSinceLastCommit = secondsSinceLastCommit
        self.assignedPartitions = assignedPartitions
        self.healthy = healthy
    }
}
