//! The byte-level BPE tokenizer of the Qwen2 family, bit-exact with HF tokenizers.
//!
//! Pipeline of [`Tokenizer::encode`], the same as HF's for `Qwen2TokenizerFast`:
//! 1. added (control) tokens are found in the raw text, leftmost-longest;
//! 2. each stretch of text between them is NFC-normalised (Unicode 9 tables, as HF uses);
//! 3. it is split into pre-tokens by the Qwen2 (or GPT-2) pattern, see [`pretok`];
//! 4. each pre-token's bytes are merged by rank, see [`bpe`].

pub mod bpe;
pub mod bytelevel;
pub mod load;
pub mod pretok;
pub mod save;
pub mod train;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rustc_hash::FxHashMap;
use unicode_normalization_alignments::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use crate::error::{Error, Result};
use bpe::Bpe;
pub use pretok::Pattern;

/// A token matched whole in the raw text, before normalisation and pre-tokenization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedToken {
    pub content: String,
    pub id: u32,
    /// Skipped by `decode(.., skip_special_tokens=True)`.
    pub special: bool,
}

pub struct Tokenizer {
    bpe: Bpe,
    pattern: Pattern,
    nfc: bool,
    added: Vec<AddedToken>,
    added_by_content: FxHashMap<String, usize>,
    added_by_id: FxHashMap<u32, usize>,
    /// pattern i of the automaton is `added[i]`
    matcher: Option<AhoCorasick>,
    /// id -> (start, end) in `decode_bytes`; (0, 0) for ids not in use.
    decode_spans: Vec<(u32, u32)>,
    decode_bytes: Vec<u8>,
    /// id -> 1 if special (skipped when asked), 2 if the id is unused
    decode_flags: Vec<u8>,
    /// The `tokenizer_config.json` text this tokenizer came with (chat template, eos, ...).
    config_json: Option<String>,
    /// See [`Tokenizer::instance`].
    instance: u64,
}

/// The next [`Tokenizer::instance`].
static INSTANCES: AtomicU64 = AtomicU64::new(0);

const FLAG_SPECIAL: u8 = 1;
const FLAG_UNUSED: u8 = 2;

impl Tokenizer {
    /// Assemble a tokenizer. Added tokens override nothing: an added token whose content is
    /// also a vocabulary token must carry the same id.
    pub fn new(
        bpe: Bpe,
        pattern: Pattern,
        nfc: bool,
        mut added: Vec<AddedToken>,
        config_json: Option<String>,
    ) -> Result<Tokenizer> {
        added.sort_by_key(|a| a.id);
        let mut added_by_content = FxHashMap::default();
        let mut added_by_id = FxHashMap::default();
        for (i, a) in added.iter().enumerate() {
            if a.content.is_empty() {
                return Err(Error::Value(format!(
                    "added token {} has empty content",
                    a.id
                )));
            }
            if let Some(j) = added_by_content.insert(a.content.clone(), i) {
                return Err(Error::Value(format!(
                    "added token {:?} appears twice, with ids {} and {}",
                    a.content, added[j].id, a.id
                )));
            }
            if added_by_id.insert(a.id, i).is_some() {
                return Err(Error::Value(format!("two added tokens share id {}", a.id)));
            }
            if let Some(t) = bpe.token_bytes(a.id) {
                if t != added_token_bytes(&a.content).as_slice() {
                    return Err(Error::Value(format!(
                        "added token {:?} has id {}, which the vocabulary gives to {:?}",
                        a.content,
                        a.id,
                        bytelevel::encode_token(t)
                    )));
                }
            }
        }
        let matcher = if added.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(added.iter().map(|a| a.content.as_bytes()))
                    .map_err(|e| Error::Value(format!("cannot index added tokens: {e}")))?,
            )
        };
        let n_ids = added
            .iter()
            .map(|a| a.id as usize + 1)
            .max()
            .unwrap_or(0)
            .max(bpe.n_ids());
        let mut decode_spans = vec![(0u32, 0u32); n_ids];
        let mut decode_flags = vec![FLAG_UNUSED; n_ids];
        let mut decode_bytes = Vec::new();
        for id in 0..n_ids as u32 {
            let bytes: Option<Cow<[u8]>> = match added_by_id.get(&id) {
                Some(&i) => Some(Cow::Owned(added_token_bytes(&added[i].content))),
                None => bpe.token_bytes(id).map(Cow::Borrowed),
            };
            if let Some(b) = bytes {
                let start = decode_bytes.len() as u32;
                decode_bytes.extend_from_slice(&b);
                decode_spans[id as usize] = (start, decode_bytes.len() as u32);
                decode_flags[id as usize] = match added_by_id.get(&id) {
                    Some(&i) if added[i].special => FLAG_SPECIAL,
                    _ => 0,
                };
            }
        }
        Ok(Tokenizer {
            bpe,
            pattern,
            nfc,
            added,
            added_by_content,
            added_by_id,
            matcher,
            decode_spans,
            decode_bytes,
            decode_flags,
            config_json,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The Qwen2.5 tokenizer compiled into this library: 151,643 BPE tokens, 151,387 merges and
    /// the 22 control tokens at ids 151643..=151664. No file or network access.
    pub fn qwen25() -> Result<Tokenizer> {
        load::embedded_qwen25()
    }

    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    pub fn nfc(&self) -> bool {
        self.nfc
    }

    /// A number no other tokenizer built in this process has. A tokenizer does not change once
    /// built, so an index cut with one (the decontamination prefilter) knows it again by this
    /// number, without comparing its vocabulary.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub fn bpe(&self) -> &Bpe {
        &self.bpe
    }

    pub fn added_tokens(&self) -> &[AddedToken] {
        &self.added
    }

    pub fn config_json(&self) -> Option<&str> {
        self.config_json.as_deref()
    }

    /// One past the largest id (151,665 for Qwen2.5).
    pub fn vocab_size(&self) -> usize {
        self.decode_spans.len()
    }

    /// Encode ignoring added tokens: their text is encoded like any other text.
    pub fn encode_ordinary(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_ordinary_into(text, &mut out);
        out
    }

    fn encode_ordinary_into(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let text: Cow<str> = if self.nfc {
            nfc(text)
        } else {
            Cow::Borrowed(text)
        };
        for piece in pretok::split(&text, self.pattern) {
            self.bpe.encode_piece(piece, out);
        }
    }

    /// Encode `text`. Added tokens whose index (in [`Self::added_tokens`]) is set in `allowed`
    /// become their ids; one set in `disallowed` is an error; the others are plain text.
    pub fn encode(&self, text: &str, allowed: &[bool], disallowed: &[bool]) -> Result<Vec<u32>> {
        let matcher = match &self.matcher {
            Some(m) => m,
            None => return Ok(self.encode_ordinary(text)),
        };
        if disallowed.iter().any(|&d| d) {
            for m in matcher.find_iter(text) {
                if disallowed
                    .get(m.pattern().as_usize())
                    .copied()
                    .unwrap_or(false)
                {
                    return Err(Error::DisallowedSpecial(
                        self.added[m.pattern().as_usize()].content.clone(),
                    ));
                }
            }
        }
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        if !allowed.iter().any(|&a| a) {
            self.encode_ordinary_into(text, &mut out);
            return Ok(out);
        }
        let mut last = 0;
        for m in matcher.find_iter(text) {
            let i = m.pattern().as_usize();
            if !allowed.get(i).copied().unwrap_or(false) {
                continue;
            }
            self.encode_ordinary_into(&text[last..m.start()], &mut out);
            out.push(self.added[i].id);
            last = m.end();
        }
        self.encode_ordinary_into(&text[last..], &mut out);
        Ok(out)
    }

    /// Encode with every added token recognised, as HF does by default.
    pub fn encode_all_special(&self, text: &str) -> Vec<u32> {
        let all = vec![true; self.added.len()];
        // cannot fail: nothing is disallowed
        self.encode(text, &all, &[]).unwrap_or_default()
    }

    /// The bytes `ids` stand for. Unknown ids are an error naming the id.
    pub fn decode_to_bytes(&self, ids: &[u32], skip_special_tokens: bool) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        self.decode_into(ids, skip_special_tokens, &mut out)?;
        Ok(out)
    }

    #[inline]
    pub fn decode_into(
        &self,
        ids: &[u32],
        skip_special_tokens: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        for &id in ids {
            let flag = *self.decode_flags.get(id as usize).unwrap_or(&FLAG_UNUSED);
            if flag != 0 {
                if flag & FLAG_UNUSED != 0 {
                    return Err(Error::UnknownId(id as i64));
                }
                if skip_special_tokens {
                    continue;
                }
            }
            let (s, e) = self.decode_spans[id as usize];
            out.extend_from_slice(&self.decode_bytes[s as usize..e as usize]);
        }
        Ok(())
    }

    /// The token string of `id`: the byte-level form for vocabulary tokens (`"Ġworld"`), the
    /// content for added tokens.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        if let Some(&i) = self.added_by_id.get(&id) {
            return Some(self.added[i].content.clone());
        }
        self.bpe.token_bytes(id).map(bytelevel::encode_token)
    }

    /// The id of a token string, added tokens first, then the byte-level vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        if let Some(&i) = self.added_by_content.get(token) {
            return Some(self.added[i].id);
        }
        bytelevel::decode_token(token).and_then(|b| self.bpe.token_id(&b))
    }

    /// Is `id` a token of this tokenizer?
    pub fn contains_id(&self, id: u32) -> bool {
        (id as usize) < self.decode_flags.len() && self.decode_flags[id as usize] & FLAG_UNUSED == 0
    }
}

/// NFC with the Unicode 9 tables HF tokenizers uses; borrows when the text is already NFC.
pub fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().map(|(c, _)| c).collect())
    }
}

/// The bytes an added token decodes to, as HF's ByteLevel decoder computes them: through the
/// byte-level alphabet when every char is in it, else the content's UTF-8.
fn added_token_bytes(content: &str) -> Vec<u8> {
    bytelevel::decode_token(content).unwrap_or_else(|| content.as_bytes().to_vec())
}

/// Streaming decoder: feed ids as they are generated, get text that never ends in half a
/// UTF-8 character. Invalid byte sequences become U+FFFD, as in `decode`.
#[derive(Default, Clone)]
pub struct IncrementalDecoder {
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the bytes of `ids` and return the text that is now complete.
    pub fn step(
        &mut self,
        tok: &Tokenizer,
        ids: &[u32],
        skip_special_tokens: bool,
    ) -> Result<String> {
        tok.decode_into(ids, skip_special_tokens, &mut self.pending)?;
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: the prefix is valid by construction
                    out.push_str(
                        std::str::from_utf8(&self.pending[start..start + valid]).unwrap_or(""),
                    );
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start += valid + n;
                        }
                        None => {
                            start += valid;
                            break; // incomplete char at the end: keep it for the next step
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        Ok(out)
    }

    /// End of stream: whatever is pending, with incomplete characters replaced.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}
