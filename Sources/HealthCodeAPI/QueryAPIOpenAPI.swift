/// The OpenAPI 3.1 document of the query API, served at `/openapi.json`: the file `openapi/api.json`,
/// embedded when the target is built (the EmbedOpenAPI plugin), so there is one source to edit.
public enum QueryAPIOpenAPI {
    /// The document as JSON.
    public static let document = OpenAPIDocument.json
}
