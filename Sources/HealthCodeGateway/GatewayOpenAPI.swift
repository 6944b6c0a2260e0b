/// The OpenAPI 3.1 document of the gateway, served at `/openapi.json`: the file `openapi/gateway.json`,
/// embedded when the target is built (the EmbedOpenAPI plugin), so there is one source to edit.
public enum GatewayOpenAPI {
    /// The document as JSON.
    public static let document = OpenAPIDocument.json
}
