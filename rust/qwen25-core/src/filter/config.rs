//! The filter configuration, defined once: these structs, their defaults and their JSON form are
//! what Python's `qwen25.data.filters` reads (`default_config_json`), so no default is written
//! twice.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a filter splits text into words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Words {
    /// datatrove 0.10's English words: spaCy's tokenizer rules (punctuation runs, contractions,
    /// abbreviations, URLs as spaCy splits them), blank tokens dropped; see `filter/spacy.rs`.
    #[default]
    Spacy,
    /// A whitespace split with each chunk's leading and trailing punctuation peeled off as
    /// one-char tokens (qwen25's earlier definition, faster: a punctuation run such as `-----`
    /// becomes one token per char, contractions stay whole, so ratios over words differ).
    Simple,
}

/// How Gopher repetition splits text into lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineSplit {
    /// datatrove's `re.split("\n+", text)`: blank lines do not count (a line of spaces does).
    #[default]
    NewlineRuns,
    /// Python's `str.splitlines()`: every blank line is a line, and blank lines repeat, so
    /// spaced-out texts (licences, plays) score high `dup_line_frac` (qwen25's earlier rule).
    Splitlines,
}

/// How C4 counts the sentences of a kept line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentences {
    /// datatrove 0.10's: spaCy's rule-based `sentencizer` over spaCy's English tokens.
    #[default]
    Spacy,
    /// Pieces between runs of `.!?` (plus closing quotes and brackets) followed by whitespace
    /// (qwen25's earlier rule).
    Simple,
}

/// datatrove's `TERMINAL_PUNCTUATION`, FineWeb's default stop characters.
fn terminal_punctuation() -> String {
    super::spacy_data::TERMINAL_PUNCTUATION.iter().collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherQualityConfig {
    pub min_doc_words: Option<usize>,
    pub max_doc_words: Option<usize>,
    pub min_avg_word_length: Option<f64>,
    pub max_avg_word_length: Option<f64>,
    pub max_symbol_word_ratio: Option<f64>,
    pub max_bullet_lines_ratio: Option<f64>,
    pub max_ellipsis_lines_ratio: Option<f64>,
    pub max_non_alpha_words_ratio: Option<f64>,
    /// counts distinct stop words present, as datatrove
    pub min_stop_words: Option<usize>,
    pub stop_words: Vec<String>,
    pub words: Words,
}

impl Default for GopherQualityConfig {
    fn default() -> Self {
        GopherQualityConfig {
            min_doc_words: Some(50),
            max_doc_words: Some(100_000),
            min_avg_word_length: Some(3.0),
            max_avg_word_length: Some(10.0),
            max_symbol_word_ratio: Some(0.1),
            max_bullet_lines_ratio: Some(0.9),
            max_ellipsis_lines_ratio: Some(0.3),
            max_non_alpha_words_ratio: Some(0.8),
            min_stop_words: Some(2),
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            words: Words::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GopherRepetitionConfig {
    pub dup_line_frac: Option<f64>,
    pub dup_para_frac: Option<f64>,
    pub dup_line_char_frac: Option<f64>,
    pub dup_para_char_frac: Option<f64>,
    pub top_n_grams: Vec<(usize, f64)>,
    pub dup_n_grams: Vec<(usize, f64)>,
    pub words: Words,
    pub lines: LineSplit,
}

impl Default for GopherRepetitionConfig {
    fn default() -> Self {
        GopherRepetitionConfig {
            dup_line_frac: Some(0.3),
            dup_para_frac: Some(0.3),
            dup_line_char_frac: Some(0.2),
            dup_para_char_frac: Some(0.2),
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![
                (5, 0.15),
                (6, 0.14),
                (7, 0.13),
                (8, 0.12),
                (9, 0.11),
                (10, 0.10),
            ],
            words: Words::default(),
            lines: LineSplit::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct C4Config {
    pub remove_citations: bool,
    pub filter_no_terminal_punct: bool,
    /// -1 disables
    pub min_num_sentences: i64,
    /// -1 disables
    pub min_words_per_line: i64,
    /// -1 disables
    pub max_word_length: i64,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
    pub sentences: Sentences,
}

impl Default for C4Config {
    fn default() -> Self {
        C4Config {
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
            sentences: Sentences::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FineWebConfig {
    pub line_punct_thr: f64,
    pub line_punct_exclude_zero: bool,
    pub short_line_thr: f64,
    pub short_line_length: usize,
    /// datatrove's default 0.01 (qwen25 used 0.1 before)
    pub char_duplicates_ratio: f64,
    pub new_line_ratio: f64,
    /// a line "ends in punctuation" when it ends with one of these chars
    pub stop_chars: String,
    pub words: Words,
}

impl Default for FineWebConfig {
    fn default() -> Self {
        FineWebConfig {
            line_punct_thr: 0.12,
            line_punct_exclude_zero: false,
            short_line_thr: 0.67,
            short_line_length: 30,
            char_duplicates_ratio: 0.01,
            new_line_ratio: 0.3,
            stop_chars: terminal_punctuation(),
            words: Words::default(),
        }
    }
}

/// Which filters run, with their thresholds (`None` switches a filter off).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub gopher_repetition: Option<GopherRepetitionConfig>,
    pub gopher_quality: Option<GopherQualityConfig>,
    pub c4: Option<C4Config>,
    pub fineweb: Option<FineWebConfig>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            gopher_repetition: Some(Default::default()),
            gopher_quality: Some(Default::default()),
            c4: Some(Default::default()),
            fineweb: Some(Default::default()),
        }
    }
}

impl FilterConfig {
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Value(format!("bad filter config: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_roundtrip() {
        let c = FilterConfig::default();
        assert_eq!(FilterConfig::from_json(&c.to_json()).unwrap(), c);
        assert!(FilterConfig::from_json("{\"gopher\": 1}").is_err());
        let partial =
            FilterConfig::from_json("{\"c4\": null, \"fineweb\": {\"new_line_ratio\": 0.5}}")
                .unwrap();
        assert!(partial.c4.is_none());
        assert_eq!(partial.fineweb.unwrap().short_line_length, 30);
    }
}
