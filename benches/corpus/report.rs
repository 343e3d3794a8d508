//! Scoring and tables: per format and per family, what each reader found and how many photos
//! it reported a false code in, with its median and p90 time.

use std::collections::BTreeMap;

use librarian_model::{Barcode, BarcodeFormat, normalize_gtin};

use crate::Read;
use crate::manifest::{Case, NO_CODE};
use crate::support::percentile;

/// zxing prints UPC-A as 12 digits and UPC-E as 8; a reader may report the same symbols as
/// EAN-13 (a leading zero) or UPC-E expanded. Product codes are compared as GTINs.
fn same_code(format: &str, text: &str, read_format: &str, read_text: &str) -> bool {
    let gtin = |format: &str, text: &str| {
        let code = format.parse().ok().map(|format| Barcode {
            text: text.to_owned(),
            format,
            kind: String::new(),
            points: Vec::new(),
            conflicting_texts: Vec::new(),
            gs1: false,
            sequence: None,
        });
        code.and_then(|c| c.gtin())
            .or_else(|| normalize_gtin(text).filter(|_| format.starts_with("UPC")))
    };
    format != NO_CODE
        && (read_text == text
            || gtin(format, text).is_some_and(|g| Some(g) == gtin(read_format, read_text)))
}

pub fn found(case: &Case, read: &Read) -> bool {
    read.codes
        .iter()
        .any(|(format, text)| same_code(&case.format, &case.expected, format, text))
}

/// A code the photo does not hold: a misread, a false code of another format (a UPC-E in the
/// left half of an EAN-13), or any code in a photo without one. The second code a generated
/// photo may hold is no false read.
pub fn false_read(case: &Case, read: &Read) -> bool {
    read.codes.iter().any(|(format, text)| {
        !same_code(&case.format, &case.expected, format, text)
            && !case
                .other
                .as_ref()
                .is_some_and(|(f, t)| same_code(f, t, format, text))
    })
}

/// The family a format belongs to: product codes, the other linear codes, 2D symbols.
fn family(format: &str) -> &'static str {
    match format.parse::<BarcodeFormat>() {
        _ if format == NO_CODE => "**no code**",
        Ok(f) if f.is_product() => "**1D product**",
        Ok(
            BarcodeFormat::Aztec
            | BarcodeFormat::DataMatrix
            | BarcodeFormat::Pdf417
            | BarcodeFormat::QrCode
            | BarcodeFormat::MicroQrCode
            | BarcodeFormat::RectangularMicroQrCode
            | BarcodeFormat::Maxicode,
        ) => "**2D**",
        _ => "**1D other**",
    }
}

#[derive(Default, Clone)]
struct Tally {
    images: usize,
    found: usize,
    false_reads: usize,
    ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, case: &Case, read: &Read) {
        self.images += 1;
        self.found += usize::from(found(case, read));
        self.false_reads += usize::from(false_read(case, read));
        self.ms.push(read.ms);
    }
    fn merge(&mut self, other: &Tally) {
        self.images += other.images;
        self.found += other.found;
        self.false_reads += other.false_reads;
        self.ms.extend(&other.ms);
    }
    fn times(&self) -> (f64, f64) {
        let mut ms = self.ms.clone();
        ms.sort_by(f64::total_cmp);
        (percentile(&ms, 0.5), percentile(&ms, 0.9))
    }
}

/// One reader's reads of a set, under the name its column gets.
pub struct Column<'a> {
    pub name: &'a str,
    pub reads: &'a [Read],
}

/// Prints the table of `cases` read by each of `columns`: a row per format, per family and
/// for all. Photos without a code have no found column: every code read in one is false.
pub fn table(title: &str, cases: &[Case], columns: &[Column<'_>]) {
    let mut rows: BTreeMap<String, Vec<Tally>> = BTreeMap::new();
    let mut families: BTreeMap<&str, Vec<Tally>> = BTreeMap::new();
    let mut all = vec![Tally::default(); columns.len()];
    for (i, case) in cases.iter().enumerate() {
        let row = rows
            .entry(case.format.clone())
            .or_insert_with(|| vec![Tally::default(); columns.len()]);
        for (tally, column) in row.iter_mut().zip(columns) {
            tally.add(case, &column.reads[i]);
        }
    }
    for (format, tallies) in &rows {
        let family = families
            .entry(family(format))
            .or_insert_with(|| vec![Tally::default(); columns.len()]);
        for (j, tally) in tallies.iter().enumerate() {
            family[j].merge(tally);
            all[j].merge(tally);
        }
    }
    println!("\n### {title}\n");
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    let header = |what: &'static str| names.iter().map(move |n| format!("{what} {n}"));
    let head: Vec<String> = ["format".to_owned(), "images".to_owned()]
        .into_iter()
        .chain(header("found"))
        .chain(header("false"))
        .chain(header("median ms"))
        .chain(header("p90 ms"))
        .collect();
    println!("| {} |", head.join(" | "));
    println!("| --- |{}", " ---: |".repeat(head.len() - 1));
    let lines = rows
        .iter()
        .map(|(f, t)| (f.as_str(), t))
        .chain(families.iter().map(|(f, t)| (*f, t)))
        .chain([("**all**", &all)]);
    for (name, tallies) in lines {
        let images = tallies[0].images;
        let mut cells = vec![name.to_owned(), images.to_string()];
        let none = name == NO_CODE || name == "**no code**";
        cells.extend(tallies.iter().map(|t| match none {
            true => "—".to_owned(),
            false => format!(
                "{} ({:.1}%)",
                t.found,
                100.0 * t.found as f64 / images.max(1) as f64
            ),
        }));
        cells.extend(tallies.iter().map(|t| t.false_reads.to_string()));
        cells.extend(tallies.iter().map(|t| format!("{:.1}", t.times().0)));
        cells.extend(tallies.iter().map(|t| format!("{:.1}", t.times().1)));
        println!("| {} |", cells.join(" | "));
    }
}

/// Lists on standard error the photos the first column missed or read a false code in, with
/// what it read and whether the last column found the code.
pub fn misses(cases: &[Case], columns: &[Column<'_>]) {
    let (Some(ours), Some(theirs)) = (columns.first(), columns.last()) else {
        return;
    };
    for (i, case) in cases.iter().enumerate() {
        let (mine, reference) = (&ours.reads[i], &theirs.reads[i]);
        if false_read(case, mine) {
            eprintln!(
                "false: {} {} {:?}",
                case.format,
                case.path.display(),
                mine.codes
            );
        }
        if case.format != NO_CODE && !found(case, mine) {
            let by = if found(case, reference) {
                "read by"
            } else {
                "missed by"
            };
            eprintln!(
                "missed ({by} {}): {} {} {:?}",
                theirs.name,
                case.format,
                case.path.display(),
                mine.codes
            );
        }
    }
}
