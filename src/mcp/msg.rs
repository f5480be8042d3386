//! JSON-RPC 2.0 wire types for the MCP stdio transport: what a line from the client can be, the
//! responses and notifications we send, and the error codes. Classification of an incoming line
//! is strict about shape (so a malformed request gets the right error code) and lenient about
//! everything the spec leaves open.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// A request id: the client's number or string, echoed back unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestId {
    Int(i64),
    Str(String),
}

impl RequestId {
    /// The id a JSON value names, if it is one JSON-RPC allows (an integer or a string).
    pub(crate) fn from_value(v: &Value) -> Option<RequestId> {
        match v {
            Value::Number(n) => n.as_i64().map(RequestId::Int),
            Value::String(s) => Some(RequestId::Str(s.clone())),
            _ => None,
        }
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RequestId::Int(n) => s.serialize_i64(*n),
            RequestId::Str(v) => s.serialize_str(v),
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Strings are quoted so `7` and `"7"` look different in logs.
        match self {
            RequestId::Int(n) => write!(f, "{n}"),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// JSON-RPC error codes we use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError = -32700,
    InvalidRequest = -32600,
    MethodNotFound = -32601,
    InvalidParams = -32602,
    InternalError = -32603,
    /// MCP `resources/read` of a URI we do not have.
    ResourceNotFound = -32002,
}

/// One message from the client.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// A response to a request of ours. We send none, so these are ignored.
    Response,
}

/// Something to write to stdout. Serialises to exactly one JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Result {
        id: RequestId,
        result: Value,
    },
    /// `id: None` is the JSON-RPC `null` id of a message whose id could not be read.
    Error {
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    },
    Notification {
        method: &'static str,
        params: Value,
    },
}

impl Outgoing {
    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Outgoing::Error {
            id,
            code,
            message: message.into(),
        }
    }
}

/// Written field by field, borrowing: a `tools/call` result can be tens of megabytes, and
/// building a `Value` first would copy it once more per response. Field order is the wire order.
impl Serialize for Outgoing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("jsonrpc", "2.0")?;
        match self {
            Outgoing::Result { id, result } => {
                map.serialize_entry("id", id)?;
                map.serialize_entry("result", result)?;
            }
            Outgoing::Error { id, code, message } => {
                #[derive(Serialize)]
                struct Body<'a> {
                    code: i32,
                    message: &'a str,
                }
                map.serialize_entry("id", id)?;
                map.serialize_entry(
                    "error",
                    &Body {
                        code: *code as i32,
                        message,
                    },
                )?;
            }
            Outgoing::Notification { method, params } => {
                map.serialize_entry("method", method)?;
                map.serialize_entry("params", params)?;
            }
        }
        map.end()
    }
}

/// Classifies one line. `Err` carries the error response to send back (never for a line that
/// could have been a notification, because notifications must not be answered).
pub fn parse_line(line: &[u8]) -> Result<Incoming, Outgoing> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Outgoing::error(None, ErrorCode::ParseError, format!("Parse error: {e}")))?;
    classify(value)
}

fn classify(value: Value) -> Result<Incoming, Outgoing> {
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batch arrays are not supported"
        } else {
            "a message must be a JSON object"
        };
        return Err(Outgoing::error(
            None,
            ErrorCode::InvalidRequest,
            format!("Invalid Request: {what}"),
        ));
    };
    let raw_id = obj.remove("id");
    let id = match &raw_id {
        None => None,
        Some(v) => match RequestId::from_value(v) {
            Some(id) => Some(id),
            None => {
                return Err(Outgoing::error(
                    None,
                    ErrorCode::InvalidRequest,
                    "Invalid Request: id must be a string or an integer",
                ));
            }
        },
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        // Without an id we cannot tell a broken notification from a broken request; a
        // response with id null is what JSON-RPC prescribes for an unreadable message.
        return Err(Outgoing::error(
            id,
            ErrorCode::InvalidRequest,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
        ));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => {
            return Err(Outgoing::error(
                id,
                ErrorCode::InvalidRequest,
                "Invalid Request: method must be a string",
            ));
        }
        None if id.is_some() && (obj.contains_key("result") || obj.contains_key("error")) => {
            return Ok(Incoming::Response);
        }
        None => {
            return Err(Outgoing::error(
                id,
                ErrorCode::InvalidRequest,
                "Invalid Request: missing method",
            ));
        }
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            let message = "Invalid params: params must be an object";
            return match id {
                Some(id) => Err(Outgoing::error(Some(id), ErrorCode::InvalidParams, message)),
                // A notification with bad params is dropped silently by the caller.
                None => Ok(Incoming::Notification {
                    method,
                    params: Value::Null,
                }),
            };
        }
    };
    Ok(match id {
        Some(id) => Incoming::Request { id, method, params },
        None => Incoming::Notification { method, params },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    impl Outgoing {
        fn to_value(&self) -> Value {
            serde_json::to_value(self).unwrap()
        }
    }

    fn code_of(r: Result<Incoming, Outgoing>) -> (Option<RequestId>, i32) {
        match r {
            Err(Outgoing::Error { id, code, .. }) => (id, code as i32),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn request_with_absent_or_null_params_gets_empty_object() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":null}"#,
        ] {
            assert_eq!(
                parse_line(line.as_bytes()),
                Ok(Incoming::Request {
                    id: RequestId::Int(1),
                    method: "ping".into(),
                    params: json!({})
                })
            );
        }
    }

    #[test]
    fn string_and_number_ids_stay_distinct() {
        let a = parse_line(br#"{"jsonrpc":"2.0","id":"7","method":"x"}"#);
        let b = parse_line(br#"{"jsonrpc":"2.0","id":7,"method":"x"}"#);
        assert_ne!(a, b);
        assert_eq!(RequestId::Str("7".into()).to_string(), "\"7\"");
        assert_eq!(RequestId::Int(7).to_string(), "7");
    }

    #[test]
    fn malformed_lines_get_the_right_codes() {
        assert_eq!(code_of(parse_line(b"{nope")), (None, -32700));
        assert_eq!(code_of(parse_line(b"\xff\xfe")), (None, -32700));
        assert_eq!(code_of(parse_line(b"[1,2]")), (None, -32600));
        assert_eq!(code_of(parse_line(b"42")), (None, -32600));
        assert_eq!(
            code_of(parse_line(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#)),
            (None, -32600)
        );
        assert_eq!(
            code_of(parse_line(br#"{"jsonrpc":"1.0","id":3,"method":"x"}"#)),
            (Some(RequestId::Int(3)), -32600)
        );
        assert_eq!(
            code_of(parse_line(
                br#"{"jsonrpc":"2.0","id":3,"method":"x","params":[1]}"#
            )),
            (Some(RequestId::Int(3)), -32602)
        );
        assert_eq!(
            code_of(parse_line(br#"{"jsonrpc":"2.0","id":3}"#)),
            (Some(RequestId::Int(3)), -32600)
        );
    }

    #[test]
    fn notifications_and_responses_are_recognised() {
        assert_eq!(
            parse_line(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::Notification {
                method: "notifications/initialized".into(),
                params: json!({})
            })
        );
        assert_eq!(
            parse_line(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(Incoming::Response)
        );
    }

    #[test]
    fn outgoing_serialises_as_json_rpc() {
        let e = Outgoing::error(None, ErrorCode::ParseError, "bad");
        assert_eq!(
            e.to_value(),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}})
        );
        let r = Outgoing::Result {
            id: RequestId::Str("a".into()),
            result: json!({}),
        };
        assert_eq!(r.to_value(), json!({"jsonrpc":"2.0","id":"a","result":{}}));
        let n = Outgoing::Notification {
            method: "notifications/message",
            params: json!({"level": "info"}),
        };
        assert_eq!(
            serde_json::to_string(&n).unwrap(),
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}"#
        );
        let e = Outgoing::error(Some(RequestId::Int(4)), ErrorCode::MethodNotFound, "m");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"m"}}"#
        );
    }
}
