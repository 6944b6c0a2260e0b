/// The OpenAPI 3.1 document of the gateway, served at `/openapi.json`; a copy is kept in
/// `openapi/gateway.json` (a test checks that both are the same).
public enum GatewayOpenAPI {
    /// The document as JSON.
    public static let document = #"""
        {
          "components": {
            "schemas": {
              "BatchAnswer": {
                "properties": {
                  "accepted": {
                    "type": "integer"
                  },
                  "duplicate": {
                    "type": "integer"
                  },
                  "failed": {
                    "type": "integer"
                  },
                  "rejected": {
                    "type": "integer"
                  },
                  "results": {
                    "items": {
                      "$ref": "#/components/schemas/EventResult"
                    },
                    "type": "array"
                  }
                },
                "required": [
                  "accepted",
                  "duplicate",
                  "rejected",
                  "failed",
                  "results"
                ],
                "type": "object"
              },
              "CloudEvent": {
                "description": "A CloudEvent of the HealthCode contract (schemas/).",
                "properties": {
                  "data": {
                    "type": "object"
                  },
                  "id": {
                    "maxLength": 128,
                    "minLength": 1,
                    "type": "string"
                  },
                  "source": {
                    "type": "string"
                  },
                  "specversion": {
                    "const": "1.0"
                  },
                  "subject": {
                    "type": "string"
                  },
                  "time": {
                    "format": "date-time",
                    "type": "string"
                  },
                  "type": {
                    "enum": [
                      "hc.test-result.v1",
                      "hc.travel.v1",
                      "hc.declaration.v1",
                      "hc.exposure.v1",
                      "hc.risk-area.v1",
                      "hc.review.v1",
                      "hc.retraction.v1"
                    ],
                    "type": "string"
                  }
                },
                "required": [
                  "specversion",
                  "id",
                  "source",
                  "type",
                  "subject",
                  "time",
                  "data"
                ],
                "type": "object"
              },
              "EventProblem": {
                "properties": {
                  "code": {
                    "type": "string"
                  },
                  "field": {
                    "type": "string"
                  },
                  "reason": {
                    "type": "string"
                  }
                },
                "required": [
                  "code",
                  "field",
                  "reason"
                ],
                "type": "object"
              },
              "EventResult": {
                "properties": {
                  "errors": {
                    "items": {
                      "$ref": "#/components/schemas/EventProblem"
                    },
                    "type": "array"
                  },
                  "failure": {
                    "type": "string"
                  },
                  "id": {
                    "type": "string"
                  },
                  "index": {
                    "minimum": 0,
                    "type": "integer"
                  },
                  "offset": {
                    "type": "integer"
                  },
                  "partition": {
                    "type": "integer"
                  },
                  "retriable": {
                    "type": "boolean"
                  },
                  "status": {
                    "enum": [
                      "accepted",
                      "duplicate",
                      "rejected",
                      "failed"
                    ],
                    "type": "string"
                  }
                },
                "required": [
                  "index",
                  "status"
                ],
                "type": "object"
              },
              "Health": {
                "properties": {
                  "status": {
                    "type": "string"
                  }
                },
                "required": [
                  "status"
                ],
                "type": "object"
              },
              "Problem": {
                "description": "RFC 9457 problem details.",
                "properties": {
                  "detail": {
                    "type": "string"
                  },
                  "status": {
                    "type": "integer"
                  },
                  "title": {
                    "type": "string"
                  },
                  "type": {
                    "type": "string"
                  }
                },
                "required": [
                  "type",
                  "title",
                  "status",
                  "detail"
                ],
                "type": "object"
              }
            },
            "securitySchemes": {
              "publisherKey": {
                "description": "A publisher API key (hcpk_\u2026) or an ES256 JWT client assertion.",
                "scheme": "bearer",
                "type": "http"
              }
            }
          },
          "info": {
            "description": "Registered publishers post CloudEvents batches; see README.md.",
            "title": "HealthCode ingestion gateway",
            "version": "1.0.0"
          },
          "openapi": "3.1.0",
          "paths": {
            "/health": {
              "get": {
                "operationId": "health",
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/Health"
                        }
                      }
                    },
                    "description": "Alive."
                  },
                  "503": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/Health"
                        }
                      }
                    },
                    "description": "Not healthy."
                  }
                },
                "summary": "Liveness."
              }
            },
            "/metrics": {
              "get": {
                "operationId": "metrics",
                "responses": {
                  "200": {
                    "content": {
                      "text/plain": {
                        "schema": {
                          "type": "string"
                        }
                      }
                    },
                    "description": "Metrics in the Prometheus text format."
                  },
                  "404": {
                    "description": "Metrics are not enabled in this process."
                  }
                },
                "summary": "Prometheus metrics."
              }
            },
            "/openapi.json": {
              "get": {
                "operationId": "openapi",
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "type": "object"
                        }
                      }
                    },
                    "description": "The OpenAPI document."
                  }
                },
                "summary": "This document."
              }
            },
            "/v1/events": {
              "post": {
                "operationId": "ingestEvents",
                "requestBody": {
                  "content": {
                    "application/cloudevents-batch+json": {
                      "schema": {
                        "items": {
                          "$ref": "#/components/schemas/CloudEvent"
                        },
                        "type": "array"
                      }
                    },
                    "application/x-ndjson": {
                      "schema": {
                        "description": "One CloudEvent per line.",
                        "type": "string"
                      }
                    }
                  },
                  "required": true
                },
                "responses": {
                  "202": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/BatchAnswer"
                        }
                      }
                    },
                    "description": "Every event has a result; accepted ones are in Kafka."
                  },
                  "400": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "The body is not a batch of JSON objects."
                  },
                  "401": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "No, unknown, revoked or expired credential.",
                    "headers": {
                      "WWW-Authenticate": {
                        "description": "The authentication scheme.",
                        "schema": {
                          "type": "string"
                        }
                      }
                    }
                  },
                  "403": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/BatchAnswer"
                        }
                      }
                    },
                    "description": "Every event was refused for authorisation."
                  },
                  "413": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Too many events or too large a body."
                  },
                  "422": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/BatchAnswer"
                        }
                      }
                    },
                    "description": "No event was valid."
                  },
                  "429": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "The publisher exceeds its rate.",
                    "headers": {
                      "Retry-After": {
                        "description": "Seconds to wait before retrying.",
                        "schema": {
                          "pattern": "^[0-9]+$",
                          "type": "string"
                        }
                      }
                    }
                  },
                  "503": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/BatchAnswer"
                        }
                      },
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Overloaded, or Kafka did not take some events; retry.",
                    "headers": {
                      "Retry-After": {
                        "description": "Seconds to wait before retrying.",
                        "schema": {
                          "pattern": "^[0-9]+$",
                          "type": "string"
                        }
                      }
                    }
                  }
                },
                "security": [
                  {
                    "publisherKey": []
                  }
                ],
                "summary": "Publish a batch of events."
              }
            }
          }
        }

        """#
}
