import CRdkafka
import Logging

/// What librdkafka's callbacks reach: the logger, the statistics sink and the client's own handlers.
///
/// librdkafka gets an unretained pointer to it as the handle's opaque; ``RDKafkaClient`` keeps it alive
/// until `rd_kafka_destroy` has returned, after which no callback runs.
final class RDKafkaContext: Sendable {
    let logger: Logger
    let statistics: KafkaStatistics?
    /// A delivery report (producer; called on the poll thread).
    let onDelivery: (@Sendable (UnsafePointer<rd_kafka_message_t>) -> Void)?
    /// A rebalance event (group consumer; called on the poll thread, inside the poll call).
    let onRebalance: RebalanceCallback?

    typealias RebalanceCallback =
        @Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void

    init(
        logger: Logger,
        statistics: KafkaStatistics?,
        onDelivery: (@Sendable (UnsafePointer<rd_kafka_message_t>) -> Void)? = nil,
        onRebalance: RebalanceCallback? = nil
    ) {
        self.logger = logger
        self.statistics = statistics
        self.onDelivery = onDelivery
        self.onRebalance = onRebalance
    }

    static func from(_ handle: OpaquePointer?) -> RDKafkaContext? {
        guard let handle, let opaque = rd_kafka_opaque(handle) else { return nil }
        return Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// An owned `rd_kafka_t`. Created and destroyed by its owner's poll thread (or an admin thread);
/// callers must stop using ``pointer`` before ``destroy(flags:)``.
final class RDKafkaClient: @unchecked Sendable {
    let pointer: OpaquePointer
    let context: RDKafkaContext

    private init(pointer: OpaquePointer, context: RDKafkaContext) {
        self.pointer = pointer
        self.context = context
    }

    /// Creates a handle of `type` from `properties`, wiring the callbacks `context` asks for.
    static func make(
        type: rd_kafka_type_t,
        properties: [String: String],
        context: RDKafkaContext
    ) throws(KafkaError) -> RDKafkaClient {
        let configuration = try makeConfiguration(properties: properties)
        rd_kafka_conf_set_opaque(configuration, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(configuration, logCallback)
        rd_kafka_conf_set_error_cb(configuration, errorCallback)
        if context.statistics != nil {
            rd_kafka_conf_set_stats_cb(configuration, statisticsCallback)
        }
        if context.onDelivery != nil {
            rd_kafka_conf_set_dr_msg_cb(configuration, deliveryCallback)
        }
        if context.onRebalance != nil {
            rd_kafka_conf_set_rebalance_cb(configuration, rebalanceCallback)
        }
        var errorText = [CChar](repeating: 0, count: 512)
        // On success rd_kafka_new takes ownership of the configuration; on failure the caller keeps it.
        guard let handle = rd_kafka_new(type, configuration, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(configuration)
            throw KafkaError(
                code: .configuration,
                isRetriable: false,
                reason: String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            )
        }
        return RDKafkaClient(pointer: handle, context: context)
    }

    /// Builds a `rd_kafka_conf_t` (owned by the caller) from `properties`, rejecting unknown or
    /// invalid ones. Also used to validate a configuration without creating a client.
    static func makeConfiguration(properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        let configuration = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(configuration, name, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(configuration)
                let reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw KafkaError(code: .configuration, isRetriable: false, reason: "\(name): \(reason)")
            }
        }
        return configuration
    }

    /// Checks that `properties` form a valid librdkafka configuration.
    static func validate(properties: [String: String]) throws(KafkaError) {
        rd_kafka_conf_destroy(try makeConfiguration(properties: properties))
    }

    /// Destroys the handle (blocking: it joins librdkafka's threads). No callback runs afterwards.
    func destroy(flags: Int32 = 0) {
        rd_kafka_destroy_flags(pointer, flags)
    }
}

private func logCallback(
    handle: OpaquePointer?,
    level: Int32,
    facility: UnsafePointer<CChar>?,
    text: UnsafePointer<CChar>?
) {
    guard let context = RDKafkaContext.from(handle) else { return }
    let swiftLevel: Logger.Level =
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    var logger = context.logger
    logger[metadataKey: "kafka.facility"] = .string(facility.map { String(cString: $0) } ?? "")
    logger.log(level: swiftLevel, "\(text.map { String(cString: $0) } ?? "")")
}

private func errorCallback(
    handle: OpaquePointer?,
    code: Int32,
    reason: UnsafePointer<CChar>?,
    opaque: UnsafeMutableRawPointer?
) {
    guard let opaque else { return }
    let context = Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue()
    let error = rd_kafka_resp_err_t(code)
    let isFatal = error == RD_KAFKA_RESP_ERR__FATAL
    context.logger.log(
        level: isFatal ? .critical : .warning,
        "librdkafka error",
        metadata: [
            "kafka.error": .string(String(cString: rd_kafka_err2name(error))),
            "kafka.reason": .string(reason.map { String(cString: $0) } ?? ""),
        ]
    )
}

private func statisticsCallback(
    handle: OpaquePointer?,
    json: UnsafeMutablePointer<CChar>?,
    length: Int,
    opaque: UnsafeMutableRawPointer?
) -> Int32 {
    guard let opaque, let json,
        let statistics = Unmanaged<RDKafkaContext>.fromOpaque(opaque)
            .takeUnretainedValue().statistics
    else { return 0 }
    statistics.emit(json: UnsafeRawBufferPointer(start: json, count: length))
    return 0  // librdkafka frees the JSON
}

private func deliveryCallback(
    handle: OpaquePointer?,
    message: UnsafePointer<rd_kafka_message_t>?,
    opaque: UnsafeMutableRawPointer?
) {
    guard let opaque, let message else { return }
    Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue().onDelivery?(message)
}

private func rebalanceCallback(
    handle: OpaquePointer?,
    error: rd_kafka_resp_err_t,
    partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
    opaque: UnsafeMutableRawPointer?
) {
    guard let handle, let opaque, let partitions else { return }
    Unmanaged<RDKafkaContext>.fromOpaque(opaque).takeUnretainedValue().onRebalance?(handle, error, partitions)
}

extension UnsafeMutablePointer where Pointee == rd_kafka_topic_partition_list_t {
    /// The list's partitions as values.
    var topicPartitions: [KafkaTopicPartition] {
        (0..<Int(pointee.cnt)).map { index in
            let element = pointee.elems[index]
            return KafkaTopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }
}

/// An owned `rd_kafka_topic_partition_list_t`.
struct RDKafkaPartitionList: ~Copyable {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ partitions: some Collection<(KafkaTopicPartition, Int64)>) {
        pointer = rd_kafka_topic_partition_list_new(Int32(partitions.count))
        for (topicPartition, offset) in partitions {
            let element = rd_kafka_topic_partition_list_add(pointer, topicPartition.topic, topicPartition.partition)!
            element.pointee.offset = offset
        }
    }

    deinit {
        rd_kafka_topic_partition_list_destroy(pointer)
    }
}
