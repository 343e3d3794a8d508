//! Tesseract's TSV output read into lines: a row per page, block, paragraph, line and word,
//! each with its box; words (level 5) carry the confidence and the text.

/// One line as the engine reported it, in the pixels of the image it was given.
#[derive(Debug, PartialEq)]
pub struct EngineLine {
    pub text: String,
    /// The mean confidence of its words.
    pub confidence: f32,
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

const LINE: &str = "4";
const WORD: &str = "5";

/// The lines that hold at least one word, in the engine's reading order.
pub fn lines(tsv: &str) -> Vec<EngineLine> {
    let mut lines: Vec<(EngineLine, f32, usize)> = Vec::new();
    for row in tsv.lines() {
        let fields: Vec<&str> = row.split('\t').collect();
        // The header, when present, and anything cut short are skipped.
        let [level, _, _, _, _, _, left, top, width, height, conf, text] = fields[..] else {
            continue;
        };
        let number = |f: &str| f.trim().parse::<u32>().ok();
        match level {
            LINE => {
                let (Some(left), Some(top), Some(width), Some(height)) =
                    (number(left), number(top), number(width), number(height))
                else {
                    continue;
                };
                let line = EngineLine {
                    text: String::new(),
                    confidence: 0.0,
                    left,
                    top,
                    width,
                    height,
                };
                lines.push((line, 0.0, 0));
            }
            WORD => {
                let (word, Ok(conf)) = (text.trim(), conf.trim().parse::<f32>()) else {
                    continue;
                };
                let Some((line, sum, count)) = lines.last_mut() else {
                    continue;
                };
                if word.is_empty() || conf < 0.0 {
                    continue;
                }
                if !line.text.is_empty() {
                    line.text.push(' ');
                }
                line.text.push_str(word);
                *sum += conf;
                *count += 1;
            }
            _ => {}
        }
    }
    lines
        .into_iter()
        .filter(|(_, _, count)| *count > 0)
        .map(|(mut line, sum, count)| {
            line.confidence = sum / count as f32;
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_gathered_into_their_lines_with_the_mean_confidence() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t800\t600\t-1\t\n\
            2\t1\t1\t0\t0\t0\t10\t20\t300\t80\t-1\t\n\
            3\t1\t1\t1\t0\t0\t10\t20\t300\t80\t-1\t\n\
            4\t1\t1\t1\t1\t0\t10\t20\t300\t30\t-1\t\n\
            5\t1\t1\t1\t1\t1\t10\t20\t100\t30\t90.5\tBEST\n\
            5\t1\t1\t1\t1\t2\t120\t20\t190\t30\t80.5\tBEFORE\n\
            4\t1\t1\t1\t2\t0\t10\t70\t200\t30\t-1\t\n\
            5\t1\t1\t1\t2\t1\t10\t70\t200\t30\t70\t12.05.2027\n\
            4\t1\t1\t1\t3\t0\t10\t99\t5\t5\t-1\t\n\
            5\t1\t1\t1\t3\t1\t10\t99\t5\t5\t95\t \n";
        let lines = lines(tsv);
        assert_eq!(
            lines,
            [
                EngineLine {
                    text: "BEST BEFORE".into(),
                    confidence: 85.5,
                    left: 10,
                    top: 20,
                    width: 300,
                    height: 30,
                },
                EngineLine {
                    text: "12.05.2027".into(),
                    confidence: 70.0,
                    left: 10,
                    top: 70,
                    width: 200,
                    height: 30,
                },
            ],
            "a line of blank words is no line"
        );
    }

    #[test]
    fn rows_that_are_not_rows_are_skipped() {
        assert!(lines("").is_empty());
        assert!(lines("5\t1\t1\t1\t1\t1\t10\t20\t100\t30\t90\tWORD\n").is_empty());
        assert!(lines("4\tx\n5\t1\n").is_empty());
    }
}
