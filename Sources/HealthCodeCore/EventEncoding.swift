extension CloudEvent {
    /// The event as canonical structured-mode CloudEvents JSON: envelope attributes in a fixed order
    /// (including `recordedtime` when set), `data` members in the contract's order, instants in UTC.
    ///
    /// `EventDecoder.decode(event.jsonBytes()) == event` for every decodable event; the gateway forwards
    /// these bytes to Kafka after setting `recordedTime` and pseudonymising `subject`.
    public func jsonBytes() -> [UInt8] {
        var out = JSONWriter(capacity: 320)
        Self.writeHead(
            into: &out,
            id: id,
            source: source,
            type: type.rawValue,
            subject: subject,
            time: time,
            recordedTime: recordedTime
        )
        writeRemainder(into: &out)
        return out.bytes
    }

    /// What the person archive keeps of the event besides its columns (`subject`, `source`, `event_id`,
    /// `type`, `time`, `recorded_time`): a JSON object of the other envelope attributes and `data`, in
    /// canonical order. About 240 bytes less per archived event than the whole event;
    /// ``archived(subject:source:id:type:time:recordedTime:remainder:)`` puts the event back together.
    public func archivedRemainder() -> String {
        var out = JSONWriter(capacity: 160)
        writeRemainder(into: &out)
        // The remainder starts with the comma that follows the head in the whole event.
        out.bytes[0] = UInt8(ascii: "{")
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// The event the archive's columns and ``archivedRemainder()`` came from, equal to the one archived.
    /// Throws (naming the field) only if the row was not written from an event.
    public static func archived(
        subject: String,
        source: String,
        id: String,
        type: String,
        time: Instant,
        recordedTime: Instant?,
        remainder: String
    ) throws(EventValidationError) -> CloudEvent {
        try EventDecoder.decodeArchived(
            Array(remainder.utf8),
            id: id,
            source: source,
            typeName: type,
            subject: subject,
            time: time,
            recordedTime: recordedTime
        )
    }

    /// `{"specversion":"1.0","id":…,"source":…,"type":…,"subject":…,"time":…[,"recordedtime":…]`.
    private static func writeHead(
        into out: inout JSONWriter,
        id: String,
        source: String,
        type: String,
        subject: String,
        time: Instant,
        recordedTime: Instant?
    ) {
        out.raw("{\"specversion\":\"1.0\",")
        out.key("id")
        out.string(id)
        out.raw(",")
        out.key("source")
        out.string(source)
        out.raw(",")
        out.key("type")
        out.string(type)
        out.raw(",")
        out.key("subject")
        out.string(subject)
        out.raw(",")
        out.key("time")
        out.string(time.rfc3339)
        if let recordedTime {
            out.raw(",")
            out.key("recordedtime")
            out.string(recordedTime.rfc3339)
        }
    }

    /// `,"datacontenttype":…` and the other optional attributes, then `,"data":{…}}`.
    private func writeRemainder(into out: inout JSONWriter) {
        if let dataContentType {
            out.raw(",")
            out.key("datacontenttype")
            out.string(dataContentType)
        }
        if let dataSchema {
            out.raw(",")
            out.key("dataschema")
            out.string(dataSchema)
        }
        if let traceParent {
            out.raw(",")
            out.key("traceparent")
            out.string(traceParent)
        }
        out.raw(",")
        out.key("data")
        out.raw("{")
        switch payload {
        case .testResult(let test):
            out.key("test")
            out.string(test.test.rawValue)
            out.raw(",")
            out.key("result")
            out.string(test.result.rawValue)
            out.raw(",")
            out.key("lab")
            out.string(test.lab)
        case .travel(let travel):
            out.key("mode")
            out.string(travel.mode.rawValue)
            if let carrier = travel.carrier {
                out.raw(",")
                out.key("carrier")
                out.string(carrier)
            }
            out.raw(",")
            out.key("from")
            out.string(travel.from.description)
            out.raw(",")
            out.key("to")
            out.string(travel.to.description)
            out.raw(",")
            out.key("arrivedAt")
            out.string(travel.arrivedAt.rfc3339)
        case .declaration(let declaration):
            out.key("symptoms")
            out.array(declaration.symptoms) { out, symptom in out.string(symptom.rawValue) }
            if let temperature = declaration.temperatureCelsius {
                out.raw(",")
                out.key("temperatureCelsius")
                out.number(temperature)
            }
            if let location = declaration.location {
                out.raw(",")
                out.key("location")
                out.string(location.description)
            }
        case .exposure(let exposure):
            out.key("kind")
            out.string(exposure.kind.rawValue)
            if let caseRef = exposure.caseRef {
                out.raw(",")
                out.key("caseRef")
                out.string(caseRef)
            }
        case .riskArea(let designation):
            out.key("level")
            out.string(designation.level.rawValue)
            out.raw(",")
            out.key("effectiveFrom")
            out.string(designation.effectiveFrom.rfc3339)
            if let until = designation.effectiveUntil {
                out.raw(",")
                out.key("effectiveUntil")
                out.string(until.rfc3339)
            }
        case .review(let review):
            out.key("status")
            out.string(review.status.rawValue)
            out.raw(",")
            out.key("validUntil")
            out.string(review.validUntil.rfc3339)
            out.raw(",")
            out.key("reason")
            out.string(review.reason)
            out.raw(",")
            out.key("officer")
            out.string(review.officer)
            if let approval = review.approval {
                out.raw(",")
                out.key("approvedBy")
                out.string(approval.officer)
                out.raw(",")
                out.key("approvedAt")
                out.string(approval.at.rfc3339)
            }
        case .retraction(let retraction):
            out.key("retracts")
            out.string(retraction.retracts)
            out.raw(",")
            out.key("reason")
            out.string(retraction.reason)
        }
        out.raw("}}")
    }
}
