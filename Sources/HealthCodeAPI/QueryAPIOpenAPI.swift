/// The OpenAPI 3.1 document of the query API, served at `/openapi.json`; a copy is kept in
/// `openapi/api.json` (a test checks that both are the same).
public enum QueryAPIOpenAPI {
    /// The document as JSON.
    public static let document = #"""
        {
          "components": {
            "responses": {
              "DatabaseUnavailable": {
                "content": {
                  "application/problem+json": {
                    "schema": {
                      "$ref": "#/components/schemas/Problem"
                    }
                  }
                },
                "description": "The code store (PostgreSQL) did not answer within the read timeout (default 2 s) or is unavailable; ask again after Retry-After seconds.",
                "headers": {
                  "Retry-After": {
                    "description": "Seconds to wait before asking again.",
                    "schema": {
                      "minimum": 1,
                      "type": "integer"
                    }
                  }
                }
              }
            },
            "schemas": {
              "EventReference": {
                "properties": {
                  "id": {
                    "type": "string"
                  },
                  "source": {
                    "type": "string"
                  }
                },
                "required": [
                  "source",
                  "id"
                ],
                "type": "object"
              },
              "Explanation": {
                "properties": {
                  "at": {
                    "format": "date-time",
                    "type": "string"
                  },
                  "code": {
                    "$ref": "#/components/schemas/PersonCode"
                  },
                  "firingRules": {
                    "items": {
                      "properties": {
                        "colour": {
                          "enum": [
                            "green",
                            "yellow",
                            "red"
                          ],
                          "type": "string"
                        },
                        "events": {
                          "items": {
                            "$ref": "#/components/schemas/EventReference"
                          },
                          "type": "array"
                        },
                        "rule": {
                          "type": "string"
                        },
                        "since": {
                          "format": "date-time",
                          "type": "string"
                        },
                        "until": {
                          "format": "date-time",
                          "type": [
                            "string",
                            "null"
                          ]
                        }
                      },
                      "required": [
                        "rule",
                        "colour",
                        "since",
                        "until",
                        "events"
                      ],
                      "type": "object"
                    },
                    "type": "array"
                  },
                  "knownAt": {
                    "format": "date-time",
                    "type": "string"
                  },
                  "subject": {
                    "type": "string"
                  },
                  "timeline": {
                    "items": {
                      "properties": {
                        "firingRules": {
                          "items": {
                            "type": "string"
                          },
                          "type": "array"
                        },
                        "id": {
                          "type": "string"
                        },
                        "known": {
                          "type": "boolean"
                        },
                        "recordedTime": {
                          "format": "date-time",
                          "type": "string"
                        },
                        "source": {
                          "type": "string"
                        },
                        "time": {
                          "format": "date-time",
                          "type": "string"
                        },
                        "type": {
                          "type": "string"
                        }
                      },
                      "required": [
                        "source",
                        "id",
                        "type",
                        "time",
                        "recordedTime",
                        "known",
                        "firingRules"
                      ],
                      "type": "object"
                    },
                    "type": "array"
                  }
                },
                "required": [
                  "subject",
                  "at",
                  "knownAt",
                  "code",
                  "firingRules",
                  "timeline"
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
              "PersonCode": {
                "properties": {
                  "evaluatedAt": {
                    "format": "date-time",
                    "type": "string"
                  },
                  "knownAt": {
                    "format": "date-time",
                    "type": "string"
                  },
                  "reasons": {
                    "items": {
                      "properties": {
                        "colour": {
                          "enum": [
                            "green",
                            "yellow",
                            "red"
                          ],
                          "type": "string"
                        },
                        "events": {
                          "items": {
                            "$ref": "#/components/schemas/EventReference"
                          },
                          "type": "array"
                        },
                        "rule": {
                          "type": "string"
                        },
                        "until": {
                          "format": "date-time",
                          "type": [
                            "string",
                            "null"
                          ]
                        }
                      },
                      "required": [
                        "rule",
                        "colour",
                        "until",
                        "events"
                      ],
                      "type": "object"
                    },
                    "type": "array"
                  },
                  "ruleSet": {
                    "properties": {
                      "hash": {
                        "type": "string"
                      },
                      "id": {
                        "type": "string"
                      },
                      "version": {
                        "type": "string"
                      }
                    },
                    "required": [
                      "id",
                      "version",
                      "hash"
                    ],
                    "type": "object"
                  },
                  "status": {
                    "enum": [
                      "green",
                      "yellow",
                      "red"
                    ],
                    "type": "string"
                  },
                  "subject": {
                    "type": "string"
                  },
                  "validUntil": {
                    "format": "date-time",
                    "type": [
                      "string",
                      "null"
                    ]
                  }
                },
                "required": [
                  "subject",
                  "status",
                  "validUntil",
                  "reasons",
                  "ruleSet",
                  "evaluatedAt",
                  "knownAt"
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
              },
              "SignedCode": {
                "properties": {
                  "expiresAt": {
                    "format": "date-time",
                    "type": "string"
                  },
                  "issuer": {
                    "type": "string"
                  },
                  "token": {
                    "type": "string"
                  }
                },
                "required": [
                  "token",
                  "issuer",
                  "expiresAt"
                ],
                "type": "object"
              }
            },
            "securitySchemes": {
              "analystKey": {
                "description": "An analyst key (hcak_…).",
                "scheme": "bearer",
                "type": "http"
              }
            }
          },
          "info": {
            "description": "Codes, signed codes, explanations and exports; see README.md.",
            "title": "HealthCode query API",
            "version": "1.0.0"
          },
          "openapi": "3.1.0",
          "paths": {
            "/.well-known/jwks.json": {
              "get": {
                "operationId": "getKeys",
                "responses": {
                  "200": {
                    "content": {
                      "application/jwk-set+json": {
                        "schema": {
                          "properties": {
                            "keys": {
                              "items": {
                                "properties": {
                                  "alg": {
                                    "const": "ES256"
                                  },
                                  "crv": {
                                    "const": "P-256"
                                  },
                                  "kid": {
                                    "type": "string"
                                  },
                                  "kty": {
                                    "const": "EC"
                                  },
                                  "use": {
                                    "const": "sig"
                                  },
                                  "x": {
                                    "type": "string"
                                  },
                                  "y": {
                                    "type": "string"
                                  }
                                },
                                "required": [
                                  "kty",
                                  "crv",
                                  "kid",
                                  "x",
                                  "y"
                                ],
                                "type": "object"
                              },
                              "type": "array"
                            }
                          },
                          "required": [
                            "keys"
                          ],
                          "type": "object"
                        }
                      }
                    },
                    "description": "JWKS."
                  }
                },
                "summary": "The issuer's public keys."
              }
            },
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
            "/v1/code-lookups": {
              "post": {
                "operationId": "lookUpCode",
                "requestBody": {
                  "content": {
                    "application/json": {
                      "schema": {
                        "properties": {
                          "subject": {
                            "maxLength": 128,
                            "minLength": 1,
                            "type": "string"
                          }
                        },
                        "required": [
                          "subject"
                        ],
                        "type": "object"
                      }
                    }
                  },
                  "required": true
                },
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "properties": {
                            "code": {
                              "$ref": "#/components/schemas/PersonCode"
                            },
                            "signedCode": {
                              "$ref": "#/components/schemas/SignedCode"
                            }
                          },
                          "required": [
                            "code",
                            "signedCode"
                          ],
                          "type": "object"
                        }
                      }
                    },
                    "description": "The code and its signed form."
                  },
                  "400": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Not {\"subject\": identifier}."
                  },
                  "413": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Body too large."
                  },
                  "503": {
                    "$ref": "#/components/responses/DatabaseUnavailable"
                  }
                },
                "summary": "A resident's code by raw identifier, signed."
              }
            },
            "/v1/code-verifications": {
              "post": {
                "operationId": "verifyCode",
                "requestBody": {
                  "content": {
                    "application/json": {
                      "schema": {
                        "properties": {
                          "token": {
                            "type": "string"
                          }
                        },
                        "required": [
                          "token"
                        ],
                        "type": "object"
                      }
                    }
                  },
                  "required": true
                },
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "properties": {
                            "expiresAt": {
                              "format": "date-time",
                              "type": "string"
                            },
                            "issuedAt": {
                              "format": "date-time",
                              "type": "string"
                            },
                            "issuer": {
                              "type": "string"
                            },
                            "reason": {
                              "type": "string"
                            },
                            "status": {
                              "enum": [
                                "green",
                                "yellow",
                                "red"
                              ],
                              "type": "string"
                            },
                            "subject": {
                              "type": "string"
                            },
                            "valid": {
                              "type": "boolean"
                            }
                          },
                          "required": [
                            "valid"
                          ],
                          "type": "object"
                        }
                      }
                    },
                    "description": "Whether it is valid, and its claims."
                  },
                  "400": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Not {\"token\": JWS}."
                  },
                  "413": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Body too large."
                  }
                },
                "summary": "Verify a signed code of this or a trusted region."
              }
            },
            "/v1/people/{pseudonym}/code": {
              "get": {
                "operationId": "getCode",
                "parameters": [
                  {
                    "in": "path",
                    "name": "pseudonym",
                    "required": true,
                    "schema": {
                      "pattern": "^[0-9a-f]{32}$",
                      "type": "string"
                    }
                  },
                  {
                    "in": "query",
                    "name": "at",
                    "required": false,
                    "schema": {
                      "format": "date-time",
                      "type": "string"
                    }
                  },
                  {
                    "in": "query",
                    "name": "knownAt",
                    "required": false,
                    "schema": {
                      "format": "date-time",
                      "type": "string"
                    }
                  }
                ],
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/PersonCode"
                        }
                      }
                    },
                    "description": "The code."
                  },
                  "400": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Not a pseudonym, or not an RFC 3339 instant."
                  },
                  "503": {
                    "$ref": "#/components/responses/DatabaseUnavailable"
                  }
                },
                "summary": "A person's code."
              }
            },
            "/v1/people/{pseudonym}/explain": {
              "get": {
                "operationId": "explainCode",
                "parameters": [
                  {
                    "in": "path",
                    "name": "pseudonym",
                    "required": true,
                    "schema": {
                      "pattern": "^[0-9a-f]{32}$",
                      "type": "string"
                    }
                  },
                  {
                    "in": "query",
                    "name": "at",
                    "required": false,
                    "schema": {
                      "format": "date-time",
                      "type": "string"
                    }
                  },
                  {
                    "in": "query",
                    "name": "knownAt",
                    "required": false,
                    "schema": {
                      "format": "date-time",
                      "type": "string"
                    }
                  },
                  {
                    "in": "header",
                    "name": "X-HC-Purpose",
                    "required": true,
                    "schema": {
                      "maxLength": 200,
                      "minLength": 1,
                      "type": "string"
                    }
                  }
                ],
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "$ref": "#/components/schemas/Explanation"
                        }
                      }
                    },
                    "description": "The explanation."
                  },
                  "400": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Not a pseudonym, or not an RFC 3339 instant."
                  },
                  "401": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "No, unknown or revoked analyst key.",
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
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "No declared purpose."
                  },
                  "503": {
                    "$ref": "#/components/responses/DatabaseUnavailable"
                  }
                },
                "security": [
                  {
                    "analystKey": []
                  }
                ],
                "summary": "Why a person has a code (analysts; audited)."
              }
            },
            "/v1/people/{pseudonym}/export": {
              "get": {
                "operationId": "exportPerson",
                "parameters": [
                  {
                    "in": "path",
                    "name": "pseudonym",
                    "required": true,
                    "schema": {
                      "pattern": "^[0-9a-f]{32}$",
                      "type": "string"
                    }
                  },
                  {
                    "in": "header",
                    "name": "X-HC-Purpose",
                    "required": true,
                    "schema": {
                      "maxLength": 200,
                      "minLength": 1,
                      "type": "string"
                    }
                  }
                ],
                "responses": {
                  "200": {
                    "content": {
                      "application/json": {
                        "schema": {
                          "properties": {
                            "subject": {
                              "type": "string"
                            },
                            "tables": {
                              "additionalProperties": {
                                "items": {
                                  "type": "object"
                                },
                                "type": "array"
                              },
                              "type": "object"
                            }
                          },
                          "required": [
                            "subject",
                            "tables"
                          ],
                          "type": "object"
                        }
                      }
                    },
                    "description": "Rows per table."
                  },
                  "400": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "Not a pseudonym, or not an RFC 3339 instant."
                  },
                  "401": {
                    "content": {
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "No, unknown or revoked analyst key.",
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
                      "application/problem+json": {
                        "schema": {
                          "$ref": "#/components/schemas/Problem"
                        }
                      }
                    },
                    "description": "No declared purpose."
                  },
                  "503": {
                    "$ref": "#/components/responses/DatabaseUnavailable"
                  }
                },
                "security": [
                  {
                    "analystKey": []
                  }
                ],
                "summary": "Everything held about a person (analysts; audited)."
              }
            }
          }
        }
        """#
}
