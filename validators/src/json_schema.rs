use std::path::{Path, PathBuf};

use librarian_model::{Facts, Finding};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BuildError, Stage, Validator};

/// Labels must follow a JSON Schema (drafts 4 to 2020-12), given inline or in a file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "JsonSchemaFields", into = "JsonSchemaFields")]
pub enum JsonSchemaConfig {
    Inline(Value),
    /// A file relative to the config file's folder.
    File(PathBuf),
}

/// Labels must follow a JSON Schema (drafts 4 to 2020-12). Give exactly one of `schema` and
/// `schema_file`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JsonSchemaFields {
    /// The schema, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema: Option<Value>,
    /// A file holding the schema (JSON), relative to the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "path"))]
    schema_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("give exactly one of `schema` and `schema_file`")]
pub struct OneSchemaSource;

impl TryFrom<JsonSchemaFields> for JsonSchemaConfig {
    type Error = OneSchemaSource;
    fn try_from(fields: JsonSchemaFields) -> Result<Self, OneSchemaSource> {
        match (fields.schema, fields.schema_file) {
            (Some(schema), None) => Ok(Self::Inline(schema)),
            (None, Some(file)) => Ok(Self::File(file)),
            _ => Err(OneSchemaSource),
        }
    }
}

impl From<JsonSchemaConfig> for JsonSchemaFields {
    fn from(config: JsonSchemaConfig) -> Self {
        match config {
            JsonSchemaConfig::Inline(schema) => Self {
                schema: Some(schema),
                schema_file: None,
            },
            JsonSchemaConfig::File(file) => Self {
                schema: None,
                schema_file: Some(file),
            },
        }
    }
}

pub struct JsonSchemaValidator {
    schema: Value,
    compiled: jsonschema::Validator,
}

impl JsonSchemaValidator {
    pub fn new(config: &JsonSchemaConfig, base_dir: &Path) -> Result<Self, BuildError> {
        let schema = match config {
            JsonSchemaConfig::Inline(schema) => schema.clone(),
            JsonSchemaConfig::File(file) => read_schema(&base_dir.join(file))?,
        };
        let compiled = jsonschema::validator_for(&schema).map_err(BuildError::InvalidSchema)?;
        Ok(Self { schema, compiled })
    }
}

fn read_schema(path: &Path) -> Result<Value, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::SchemaUnreadable {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| BuildError::SchemaNotJson {
        path: path.to_owned(),
        source,
    })
}

impl Validator for JsonSchemaValidator {
    fn stage(&self) -> Stage {
        Stage::Labels
    }

    fn check(&self, facts: &Facts<'_>) -> Vec<Finding> {
        let labels = Value::Object(facts.labels.clone());
        self.compiled
            .iter_errors(&labels)
            .map(|error| {
                let path = error.instance_path().as_str().to_owned();
                Finding::new("labels.schema", Some(path), error.to_string())
            })
            .collect()
    }

    fn label_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{image, labels};

    fn validator(schema: Value) -> Result<JsonSchemaValidator, BuildError> {
        JsonSchemaValidator::new(&JsonSchemaConfig::Inline(schema), Path::new("."))
    }

    #[test]
    fn reports_every_failing_label_with_its_pointer() {
        let v = validator(json!({
            "type": "object",
            "required": ["class"],
            "properties": {"class": {"type": "integer"}, "name": {"type": "string"}}
        }))
        .unwrap();
        let labels = labels(json!({"class": "three", "name": 4}));
        let findings = v.check(&Facts {
            labels: &labels,
            image: &image(10, 10),
            barcodes: &[],
            text: None,
        });
        let mut paths: Vec<_> = findings.iter().filter_map(|f| f.path.clone()).collect();
        paths.sort();
        assert_eq!(paths, ["/class", "/name"]);
        assert!(findings.iter().all(|f| f.code == "labels.schema"));
    }

    #[test]
    fn refuses_an_invalid_schema() {
        assert!(matches!(
            validator(json!({"type": "no-such-type"})),
            Err(BuildError::InvalidSchema(_))
        ));
    }

    #[test]
    fn takes_exactly_one_of_schema_and_schema_file() {
        let parse = |v: Value| serde_json::from_value::<JsonSchemaConfig>(v);
        let inline = parse(json!({"schema": {"type": "object"}})).unwrap();
        assert!(matches!(inline, JsonSchemaConfig::Inline(_)));
        let file = parse(json!({"schema_file": "s.json"})).unwrap();
        assert!(matches!(&file, JsonSchemaConfig::File(f) if f == Path::new("s.json")));
        for wrong in [json!({}), json!({"schema": {}, "schema_file": "s.json"})] {
            let error = parse(wrong).unwrap_err().to_string();
            assert!(
                error.contains("exactly one of `schema` and `schema_file`"),
                "{error}"
            );
        }
        // Written back in the fields it was read from.
        assert_eq!(
            serde_json::to_value(file).unwrap(),
            json!({"schema_file": "s.json"})
        );
    }

    #[test]
    fn reads_a_schema_file_relative_to_the_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), r#"{"type":"object"}"#).unwrap();
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let file = |name: &str| JsonSchemaConfig::File(name.into());
        assert!(JsonSchemaValidator::new(&file("s.json"), dir.path()).is_ok());
        assert!(matches!(
            JsonSchemaValidator::new(&file("nope.json"), dir.path()),
            Err(BuildError::SchemaUnreadable { .. })
        ));
        assert!(matches!(
            JsonSchemaValidator::new(&file("bad.json"), dir.path()),
            Err(BuildError::SchemaNotJson { .. })
        ));
    }
}
