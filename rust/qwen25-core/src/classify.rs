//! A fastText-style domain classifier: hashed word / word-bigram / char n-gram features and a
//! linear softmax model trained by SGD in Rust.
//!
//! - Features: the text is lowercased and its whitespace collapsed; every word gives "w:word",
//!   every adjacent pair "b:w1 w2", and (when `char_min <= char_max`, both >= 1) every char
//!   n-gram of "<word>" with length in [char_min, char_max] gives "c:gram". Each feature string
//!   hashes (xxh3-64 with `seed`) to one of `dim` buckets; a document is the set of its bucket
//!   ids with value 1/sqrt(count) each (L2-normalised binary features, duplicates summed).
//! - Model: logits = W^T x + b, softmax, cross-entropy; plain SGD over the examples in a seeded
//!   shuffled order per epoch, learning rate decaying linearly to 0 (as fastText does). Training
//!   is single-threaded, so the model is a pure function of (data, config).
//! - File: magic "QW25CLS1", a little-endian u64 header length, the JSON header (config +
//!   labels), then dim * k weights and k biases as little-endian f32.

use std::io::{Read, Write};
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::dedup::normalize::{normalize, NormConfig};
use crate::error::{Error, Result};
use crate::parallel;

const MAGIC: &[u8; 8] = b"QW25CLS1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    pub dim: usize,
    pub word_bigrams: bool,
    pub char_min: usize,
    pub char_max: usize,
    pub epochs: usize,
    pub lr: f32,
    pub l2: f32,
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            dim: 1 << 18,
            word_bigrams: true,
            char_min: 3,
            char_max: 5,
            epochs: 5,
            lr: 0.5,
            l2: 0.0,
            seed: 0,
        }
    }
}

impl ClassifierConfig {
    fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > 1 << 28 {
            return Err(Error::Value(format!(
                "dim must be in [1, 2^28], got {}",
                self.dim
            )));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && self.l2 >= 0.0 && self.l2.is_finite()) {
            return Err(Error::Value(format!(
                "lr must be > 0 and l2 >= 0, got lr={} l2={}",
                self.lr, self.l2
            )));
        }
        Ok(())
    }
}

/// Sparse features of a text: (bucket, value), sorted by bucket, duplicates merged.
pub fn features(text: &str, c: &ClassifierConfig) -> Vec<(u32, f32)> {
    let t = normalize(
        text,
        &NormConfig {
            lowercase: true,
            strip_punct: false,
            collapse_ws: true,
        },
    );
    let words: Vec<&str> = t.split(' ').filter(|w| !w.is_empty()).collect();
    let mut ids: Vec<u32> = Vec::new();
    let mut buf = String::new();
    let push = |s: &str, ids: &mut Vec<u32>| {
        ids.push((xxh3_64_with_seed(s.as_bytes(), c.seed) % c.dim as u64) as u32)
    };
    for (i, w) in words.iter().enumerate() {
        buf.clear();
        buf.push_str("w:");
        buf.push_str(w);
        push(&buf, &mut ids);
        if c.word_bigrams && i + 1 < words.len() {
            buf.clear();
            buf.push_str("b:");
            buf.push_str(w);
            buf.push(' ');
            buf.push_str(words[i + 1]);
            push(&buf, &mut ids);
        }
        if c.char_min >= 1 && c.char_min <= c.char_max {
            let chars: Vec<char> = std::iter::once('<')
                .chain(w.chars())
                .chain(std::iter::once('>'))
                .collect();
            for n in c.char_min..=c.char_max {
                if n > chars.len() {
                    break;
                }
                for s in chars.windows(n) {
                    buf.clear();
                    buf.push_str("c:");
                    buf.extend(s.iter());
                    push(&buf, &mut ids);
                }
            }
        }
    }
    if ids.is_empty() {
        return Vec::new();
    }
    let v = 1.0 / (ids.len() as f32).sqrt();
    ids.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(ids.len());
    for id in ids {
        match out.last_mut() {
            Some((b, x)) if *b == id => *x += v,
            _ => out.push((id, v)),
        }
    }
    out
}

#[derive(Clone, Debug)]
pub struct Classifier {
    pub config: ClassifierConfig,
    pub labels: Vec<String>,
    /// dim x k, row-major
    w: Vec<f32>,
    b: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    config: ClassifierConfig,
    labels: Vec<String>,
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn softmax(z: &mut [f32]) {
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for x in z.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    for x in z.iter_mut() {
        *x /= s;
    }
}

impl Classifier {
    /// Train on (text, label) pairs; labels are sorted so the model does not depend on their
    /// order of appearance.
    pub fn train<S: AsRef<str> + Sync>(
        texts: &[S],
        labels: &[S],
        config: ClassifierConfig,
        threads: usize,
    ) -> Result<Self> {
        config.validate()?;
        if texts.len() != labels.len() {
            return Err(Error::Value(format!(
                "{} texts but {} labels",
                texts.len(),
                labels.len()
            )));
        }
        if texts.is_empty() {
            return Err(Error::Value("no training examples".into()));
        }
        let mut names: Vec<String> = labels.iter().map(|l| l.as_ref().to_string()).collect();
        names.sort();
        names.dedup();
        let index: FxHashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let y: Vec<usize> = labels.iter().map(|l| index[l.as_ref()]).collect();
        let xs = parallel::map(texts, threads, |t| features(t.as_ref(), &config));
        let k = names.len();
        let mut m = Classifier {
            config: config.clone(),
            labels: names,
            w: vec![0.0; config.dim * k],
            b: vec![0.0; k],
        };
        let n = xs.len();
        let total = (config.epochs * n).max(1) as f32;
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = config.seed ^ 0x5EED;
        let mut step = 0usize;
        let mut p = vec![0.0f32; k];
        for _ in 0..config.epochs {
            for i in (1..n).rev() {
                let j = (splitmix64(&mut rng) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for &i in &order {
                let lr = config.lr * (1.0 - step as f32 / total);
                step += 1;
                m.logits_into(&xs[i], &mut p);
                softmax(&mut p);
                p[y[i]] -= 1.0; // gradient of CE wrt logits
                for (c, g) in p.iter().enumerate() {
                    m.b[c] -= lr * g;
                }
                for &(f, v) in &xs[i] {
                    let row = &mut m.w[f as usize * k..(f as usize + 1) * k];
                    for c in 0..k {
                        row[c] -= lr * (p[c] * v + config.l2 * row[c]);
                    }
                }
            }
        }
        Ok(m)
    }

    fn logits_into(&self, x: &[(u32, f32)], out: &mut [f32]) {
        let k = self.labels.len();
        out.copy_from_slice(&self.b);
        for &(f, v) in x {
            let row = &self.w[f as usize * k..(f as usize + 1) * k];
            for c in 0..k {
                out[c] += row[c] * v;
            }
        }
    }

    /// Class probabilities of each text (row-major n x k), in input order.
    pub fn predict_proba<S: AsRef<str> + Sync>(&self, texts: &[S], threads: usize) -> Vec<f32> {
        let k = self.labels.len();
        let rows = parallel::map(texts, threads, |t| {
            let mut p = vec![0.0; k];
            self.logits_into(&features(t.as_ref(), &self.config), &mut p);
            softmax(&mut p);
            p
        });
        rows.into_iter().flatten().collect()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let header = serde_json::to_vec(&Header {
            config: self.config.clone(),
            labels: self.labels.clone(),
        })
        .map_err(|e| Error::Value(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        let mut f =
            std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?);
        let mut out = Vec::with_capacity(16 + header.len() + 4 * (self.w.len() + self.b.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for x in self.w.iter().chain(&self.b) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        f.write_all(&out).map_err(|e| Error::io(&tmp, e))?;
        f.flush().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        let mut data = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| Error::io(path, e))?;
        if data.len() < 16 || &data[..8] != MAGIC {
            return Err(Error::format(
                &p,
                0,
                "not a qwen25 classifier file (bad magic)",
            ));
        }
        let hl = u64::from_le_bytes(data[8..16].try_into().unwrap_or([0; 8])) as usize;
        let body = data
            .get(16..16usize.saturating_add(hl))
            .ok_or_else(|| Error::format(&p, 0, "truncated header"))?;
        let h: Header = serde_json::from_slice(body)
            .map_err(|e| Error::format(&p, 0, format!("bad header: {e}")))?;
        h.config.validate()?;
        let k = h.labels.len();
        let want = (h.config.dim * k + k) * 4;
        let rest = &data[16 + hl..];
        if rest.len() != want {
            return Err(Error::format(
                &p,
                0,
                format!("expected {want} bytes of weights, found {}", rest.len()),
            ));
        }
        let vals: Vec<f32> = rest
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let (w, b) = vals.split_at(h.config.dim * k);
        Ok(Classifier {
            config: h.config,
            labels: h.labels,
            w: w.to_vec(),
            b: b.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_and_roundtrips() {
        let texts = [
            "def f(x): return x",
            "the cat sat on the mat",
            "import numpy as np",
            "a story of the town",
        ];
        let labels = ["code", "web", "code", "web"];
        let c = ClassifierConfig {
            dim: 4096,
            epochs: 20,
            ..Default::default()
        };
        let m = Classifier::train(&texts, &labels, c, 1).unwrap();
        let p = m.predict_proba(&["def g(y): return y"], 1);
        assert_eq!(m.labels, vec!["code", "web"]);
        assert!(p[0] > 0.5);
        let path = std::env::temp_dir().join(format!("qwen25-cls-{}.bin", std::process::id()));
        m.save(&path).unwrap();
        let m2 = Classifier::load(&path).unwrap();
        assert_eq!(m2.predict_proba(&texts, 2), m.predict_proba(&texts, 1));
        std::fs::write(&path, b"junk").unwrap();
        assert!(Classifier::load(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
