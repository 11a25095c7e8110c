//! Reads a camelCase request object field by field. Every rule failure
//! names the field by its path in the body (`sections[1].rows[0].title`)
//! and never repeats the value, which may be private or hostile.

use crate::core::error::ApiError;
use crate::core::host::Request;
use serde_json::{Map, Value};
use unicode_segmentation::UnicodeSegmentation;

/// Parses a request body that must be a JSON object.
pub fn json_object(request: &Request) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(ApiError::InvalidRequest(
            "Request body must be a JSON object.".into(),
        )),
    }
}

pub fn invalid(path: &str, rule: &str) -> ApiError {
    ApiError::InvalidRequest(format!("Field `{path}` {rule}."))
}

/// How long a text may be, in what a reader sees as characters: grapheme
/// clusters, so that a flag or a family emoji counts once.
#[derive(Clone, Copy)]
pub struct Limit {
    pub max: usize,
    /// Message bodies and captions may span lines; names and ids may not.
    pub multiline: bool,
}

impl Limit {
    pub const fn line(max: usize) -> Self {
        Limit {
            max,
            multiline: false,
        }
    }
    pub const fn lines(max: usize) -> Self {
        Limit {
            max,
            multiline: true,
        }
    }
}

pub fn grapheme_count(text: &str) -> usize {
    text.graphemes(true).count()
}

/// A non-empty text within `limit`, without control characters other than
/// line breaks where allowed.
pub fn check_text(path: &str, text: &str, limit: Limit) -> Result<(), ApiError> {
    let allowed = |c: char| !c.is_control() || (limit.multiline && c == '\n');
    if text.trim().is_empty() || !text.chars().all(allowed) {
        let rule = if limit.multiline {
            "must be a non-empty string without control characters other than line breaks"
        } else {
            "must be a non-empty string without control characters"
        };
        return Err(invalid(path, rule));
    }
    // Cheap bound first: a text never has more graphemes than chars.
    if text.len() > limit.max && grapheme_count(text) > limit.max {
        return Err(invalid(
            path,
            &format!("must be at most {} characters", limit.max),
        ));
    }
    Ok(())
}

/// One JSON object of the body and where it sits in it.
#[derive(Debug)]
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    /// The path prefix of this object's fields: empty at the root, else
    /// something like `sections[0].`.
    at: String,
}

impl<'a> Fields<'a> {
    pub fn root(object: &'a Map<String, Value>) -> Self {
        Fields {
            object,
            at: String::new(),
        }
    }

    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.at)
    }

    /// Refuses fields outside `allowed`. The unknown name is not repeated
    /// (it came from the caller); the accepted ones are listed instead.
    pub fn only(&self, allowed: &[&str], what: &str) -> Result<(), ApiError> {
        if self
            .object
            .keys()
            .all(|key| allowed.contains(&key.as_str()))
        {
            return Ok(());
        }
        let place = if self.at.is_empty() {
            "The body".to_owned()
        } else {
            format!("`{}`", self.at.trim_end_matches('.'))
        };
        Err(ApiError::InvalidRequest(format!(
            "{place} has a field that {what} does not accept; accepted: {}.",
            allowed.join(", ")
        )))
    }

    /// A field that is there, null included: null is a value of the wrong
    /// type for every field except booleans, as the schema says.
    fn present(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.present(name).is_some()
    }

    pub fn text(&self, name: &str, limit: Limit) -> Result<Option<&'a str>, ApiError> {
        let Some(value) = self.present(name) else {
            return Ok(None);
        };
        let path = self.path(name);
        let text = value
            .as_str()
            .ok_or_else(|| invalid(&path, "must be a string"))?;
        check_text(&path, text, limit)?;
        Ok(Some(text))
    }

    pub fn required_text(&self, name: &str, limit: Limit) -> Result<&'a str, ApiError> {
        self.text(name, limit)?
            .ok_or_else(|| invalid(&self.path(name), "is required"))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.present(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(_) => Err(invalid(&self.path(name), "must be a boolean")),
        }
    }

    /// A finite number within bounds.
    pub fn number(&self, name: &str, min: i32, max: i32) -> Result<Option<f64>, ApiError> {
        let Some(value) = self.present(name) else {
            return Ok(None);
        };
        let range = f64::from(min)..=f64::from(max);
        match value.as_f64() {
            Some(number) if number.is_finite() && range.contains(&number) => Ok(Some(number)),
            _ => Err(invalid(
                &self.path(name),
                &format!("must be a number from {min} to {max}"),
            )),
        }
    }

    pub fn integer(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.present(name) else {
            return Ok(None);
        };
        // JSON has one number type: 7.0 is the integer 7, as JSON Schema says.
        let whole = value.as_i64().or_else(|| {
            let number = value.as_f64()?;
            (number.fract() == 0.0 && number.abs() < 9e15).then_some(number as i64)
        });
        match whole {
            Some(number) if (min..=max).contains(&number) => Ok(Some(number)),
            _ => Err(invalid(
                &self.path(name),
                &format!("must be an integer from {min} to {max}"),
            )),
        }
    }

    pub fn object(&self, name: &str) -> Result<Option<Fields<'a>>, ApiError> {
        let Some(value) = self.present(name) else {
            return Ok(None);
        };
        let object = value
            .as_object()
            .ok_or_else(|| invalid(&self.path(name), "must be an object"))?;
        Ok(Some(Fields {
            object,
            at: format!("{}{name}.", self.at),
        }))
    }

    pub fn required_object(&self, name: &str) -> Result<Fields<'a>, ApiError> {
        self.object(name)?
            .ok_or_else(|| invalid(&self.path(name), "is required"))
    }

    /// The items of an array field, `min..=max` of them (absent counts as
    /// empty).
    fn items(&self, name: &str, min: usize, max: usize) -> Result<&'a [Value], ApiError> {
        let items: &[Value] = match self.present(name) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(_) => return Err(invalid(&self.path(name), "must be an array")),
        };
        if items.len() < min || items.len() > max {
            let rule = if min == max {
                format!("must have exactly {min} items")
            } else {
                format!("must have {min} to {max} items")
            };
            return Err(invalid(&self.path(name), &rule));
        }
        Ok(items)
    }

    /// An array of objects, each read as `Fields`.
    pub fn objects(&self, name: &str, min: usize, max: usize) -> Result<Vec<Fields<'a>>, ApiError> {
        let items = self.items(name, min, max)?;
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let at = format!("{}{name}[{index}]", self.at);
                match item.as_object() {
                    Some(object) => Ok(Fields {
                        object,
                        at: format!("{at}."),
                    }),
                    None => Err(invalid(&at, "must be an object")),
                }
            })
            .collect()
    }

    /// An array of texts, each within `limit`.
    pub fn texts(
        &self,
        name: &str,
        min: usize,
        max: usize,
        limit: Limit,
    ) -> Result<Vec<&'a str>, ApiError> {
        let items = self.items(name, min, max)?;
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let path = format!("{}{name}[{index}]", self.at);
                let text = item
                    .as_str()
                    .ok_or_else(|| invalid(&path, "must be a string"))?;
                check_text(&path, text, limit)?;
                Ok(text)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(error: ApiError) -> String {
        match error {
            ApiError::InvalidRequest(message) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn emoji_count_as_one_character() {
        assert_eq!(grapheme_count("👍🏽"), 1);
        assert_eq!(grapheme_count("👨‍👩‍👧‍👦"), 1);
        assert_eq!(grapheme_count("🇧🇷"), 1);
        // 20 family emoji are 20 characters (and 220 UTF-16 units).
        assert!(check_text("title", &"👨‍👩‍👧‍👦".repeat(20), Limit::line(20)).is_ok());
        assert!(check_text("title", &"👨‍👩‍👧‍👦".repeat(21), Limit::line(20)).is_err());
    }

    #[test]
    fn line_breaks_only_where_allowed() {
        assert!(check_text("body", "one\ntwo", Limit::lines(10)).is_ok());
        assert!(check_text("title", "one\ntwo", Limit::line(10)).is_err());
        assert!(check_text("body", "one\u{0}two", Limit::lines(10)).is_err());
    }

    #[test]
    fn nested_paths_name_the_field_and_not_the_value() {
        let body = json!({ "sections": [ { "rows": [ { "title": 5 } ] } ], "x-CANARY": 1 });
        let root = Fields::root(body.as_object().unwrap());
        let sections = root.objects("sections", 1, 10).unwrap();
        let rows = sections[0].objects("rows", 1, 10).unwrap();
        let error = message(rows[0].required_text("title", Limit::line(24)).unwrap_err());
        assert_eq!(error, "Field `sections[0].rows[0].title` must be a string.");
        let error = message(root.only(&["sections"], "type `list`").unwrap_err());
        assert!(error.contains("accepted: sections") && !error.contains("CANARY"));
        let error = message(root.objects("missing", 1, 3).unwrap_err());
        assert!(error.contains("`missing` must have 1 to 3 items"));
    }
}
