//! The corpus manifest: tab-separated with a header, `path` (relative to the manifest's
//! folder), `format` (ZXing name, or `NONE` for a photo without a code) and `expected`
//! (escaped: `\\`, `\t`, `\n`, `\r`, `\xHH`); optionally `other_format` and `other_expected`,
//! a second code in the photo, which a reader may report without it counting as false.

use std::path::{Path, PathBuf};

/// The format of a photo that holds no code.
pub const NO_CODE: &str = "NONE";

pub struct Case {
    pub path: PathBuf,
    pub format: String,
    pub expected: String,
    /// Another code in the photo: (format, text).
    pub other: Option<(String, String)>,
}

pub fn read(manifest: &Path) -> Vec<Case> {
    let base = manifest.parent().unwrap_or(Path::new("."));
    let text =
        std::fs::read_to_string(manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
    text.lines()
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut columns = line.split('\t');
            let mut next = || columns.next().unwrap_or_default().to_owned();
            let (path, format, expected) = (next(), next(), next());
            let (other_format, other_expected) = (next(), next());
            Case {
                path: base.join(path),
                format,
                expected: unescape(&expected),
                other: (!other_format.is_empty())
                    .then(|| (other_format, unescape(&other_expected))),
            }
        })
        .collect()
}

/// Writes `cases` as a manifest whose paths are file names in `dir`.
pub fn write(dir: &Path, cases: &[Case]) {
    let mut text = String::from("path\tformat\texpected\tother_format\tother_expected\n");
    for case in cases {
        let name = case.path.file_name().unwrap_or_default().to_string_lossy();
        let (other_format, other_expected) = case.other.clone().unwrap_or_default();
        text += &format!(
            "{name}\t{}\t{}\t{other_format}\t{}\n",
            case.format,
            escape(&case.expected),
            escape(&other_expected)
        );
    }
    let manifest = dir.join("manifest.tsv");
    std::fs::write(&manifest, text).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
}

fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' => out += "\\\\",
            '\t' => out += "\\t",
            '\n' => out += "\\n",
            '\r' => out += "\\r",
            c if c.is_control() && (c as u32) < 0x100 => out += &format!("\\x{:02x}", c as u32),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).unwrap_or(b'?')));
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
