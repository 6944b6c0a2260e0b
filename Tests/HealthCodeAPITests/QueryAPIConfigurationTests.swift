import HealthCodeAPI
import Testing

@Suite struct QueryAPIConfigurationTests {
    @Test func defaultsAreAccepted() throws {
        try QueryAPIConfiguration().validate()
    }

    @Test func zeroKeepsNoCodesAndIsAccepted() throws {
        var configuration = QueryAPIConfiguration()
        configuration.codeCacheEntries = 0
        try configuration.validate()
    }

    @Test("each setting out of bounds is refused by name", arguments: QueryAPIConfigurationError.Setting.allCases)
    func outOfBounds(setting: QueryAPIConfigurationError.Setting) {
        var configuration = QueryAPIConfiguration()
        switch setting {
        case .port: configuration.port = 70_000
        case .signedCodeLifetime: configuration.signedCodeLifetime = .zero
        case .codeReadsInFlight: configuration.codeReadsInFlight = 0
        case .maximumCodeReadBatch: configuration.maximumCodeReadBatch = 0
        case .codeCacheEntries: configuration.codeCacheEntries = -1
        case .codeCacheMaximumAge: configuration.codeCacheMaximumAge = .seconds(-1)
        case .readTimeout: configuration.readTimeout = .zero
        }
        let error = #expect(throws: QueryAPIConfigurationError.self) { try configuration.validate() }
        #expect(error?.setting == setting)
        #expect(error?.description.contains(setting.rawValue) == true)
    }
}
