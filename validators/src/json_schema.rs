use std::path::{Path, PathBuf};

use librarian_model::{Facts, Finding};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BuildError, Stage, Validator};

/// Labels must follow a JSON Schema (drafts 4 to 2020-12). Give exactly one of `schema` and
/// `schema_file`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaConfig {
    /// The schema, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// A file holding the schema (JSON), relative to the config file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "path"))]
    pub schema_file: Option<PathBuf>,
}

pub struct JsonSchemaValidator {
    schema: Value,
    compiled: jsonschema::Validator,
}

impl JsonSchemaValidator {
    pub fn new(config: &JsonSchemaConfig, base_dir: &Path) -> Result<Self, BuildError> {
        let schema = match (&config.schema, &config.schema_file) {
            (Some(schema), None) => schema.clone(),
            (None, Some(file)) => read_schema(&base_dir.join(file))?,
            _ => {
                return Err(BuildError::BadValue(
                    "give exactly one of `schema` and `schema_file`".into(),
                ));
            }
        };
        let compiled = jsonschema::validator_for(&schema)
            .map_err(|e| BuildError::InvalidSchema(e.to_string()))?;
        Ok(Self { schema, compiled })
    }
}

fn read_schema(path: &Path) -> Result<Value, BuildError> {
    let fail = |reason: String| BuildError::SchemaFile {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| fail(e.to_string()))
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
        let config = JsonSchemaConfig {
            schema: Some(schema),
            schema_file: None,
        };
        JsonSchemaValidator::new(&config, Path::new("."))
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
        });
        let mut paths: Vec<_> = findings.iter().filter_map(|f| f.path.clone()).collect();
        paths.sort();
        assert_eq!(paths, ["/class", "/name"]);
        assert!(findings.iter().all(|f| f.code == "labels.schema"));
    }

    #[test]
    fn refuses_an_invalid_schema_and_a_missing_one() {
        assert!(matches!(
            validator(json!({"type": "no-such-type"})),
            Err(BuildError::InvalidSchema(_))
        ));
        let none = JsonSchemaValidator::new(&JsonSchemaConfig::default(), Path::new("."));
        assert!(matches!(none, Err(BuildError::BadValue(_))));
    }

    #[test]
    fn reads_a_schema_file_relative_to_the_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.json"), r#"{"type":"object"}"#).unwrap();
        let config = JsonSchemaConfig {
            schema: None,
            schema_file: Some("s.json".into()),
        };
        assert!(JsonSchemaValidator::new(&config, dir.path()).is_ok());
        let missing = JsonSchemaConfig {
            schema: None,
            schema_file: Some("nope.json".into()),
        };
        assert!(matches!(
            JsonSchemaValidator::new(&missing, dir.path()),
            Err(BuildError::SchemaFile { .. })
        ));
    }
}
