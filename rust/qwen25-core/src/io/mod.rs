//! Record I/O shared by every data job: the JSONL reader ([`reader`]: plain, gzip, zstd; one set
//! of text rules in [`record`]) and the atomic, compressing writer ([`writer`]), both digesting the
//! files' bytes for resume ([`digest`]).

pub mod digest;
mod fastjson;
pub mod gzsplice;
pub mod reader;
pub mod record;
pub mod writer;

pub use digest::{file_digest, output_digest, written_digest, Digest};
pub use gzsplice::{GzBlockDecoder, GzEvent, Splicer};
pub use reader::{
    Bad, Batch, BatchStream, Compression, Damage, Digests, ReadOptions, RecordReader,
};
pub use record::{record_item, record_item_extra, Item, Rules, Utf8};
pub use writer::{tmp_of, AtomicWriter, Written};

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("qwen25-rd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts(skip_bad: bool, batch_size: usize) -> ReadOptions {
        ReadOptions {
            rules: Rules::new("text"),
            skip_bad,
            batch_size,
            hash: true,
            blake2b: false,
            extra_field: None,
            threads: 2,
            gz_blocks: false,
        }
    }

    fn read_all(p: &str, o: ReadOptions) -> crate::Result<(Vec<Batch>, Option<String>)> {
        let mut s = BatchStream::open(p, o)?;
        let mut out = Vec::new();
        while let Some(b) = s.next_batch()? {
            out.push(b);
        }
        Ok((out, s.finish()?.digest))
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn lines_blank_crlf_and_a_last_line_without_ending() {
        let d = tmpdir("lines");
        let data =
            b"{\"text\": \"a\"}\r\n\n  \t\n{\"text\": \"b\"}\n{\"text\": 1}\n{\"text\": \"c\"}";
        for (name, bytes) in [("x.jsonl", data.to_vec()), ("x.jsonl.gz", gz(data))] {
            let p = d.join(name);
            std::fs::write(&p, &bytes).unwrap();
            let p = p.to_str().unwrap();
            let e = read_all(p, opts(false, 2)).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{p}:5: field 'text' is a number")),
                "{e}"
            );
            let (bs, h) = read_all(p, opts(true, 2)).unwrap();
            let all: Vec<&Batch> = bs.iter().collect();
            let texts: Vec<Item> = all.iter().flat_map(|b| b.items.clone()).collect();
            assert_eq!(texts, ["a", "b", "c"].map(|t| Item::Text(t.into())));
            let lines: Vec<usize> = all.iter().flat_map(|b| b.lines.clone()).collect();
            let recs: Vec<usize> = all.iter().flat_map(|b| b.records.clone()).collect();
            assert_eq!((lines, recs), (vec![1, 4, 6], vec![0, 1, 3]));
            let raw: Vec<u8> = all
                .iter()
                .flat_map(|b| (0..b.len()).flat_map(|i| b.raw(i).to_vec()))
                .collect();
            assert_eq!(
                raw,
                b"{\"text\": \"a\"}\r\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n"
            );
            let bad: Vec<&Bad> = all.iter().flat_map(|b| &b.bad).collect();
            assert_eq!(
                (bad[0].line, bad[0].record, &bad[0].raw[..]),
                (5, 2, &b"{\"text\": 1}"[..])
            );
            assert_eq!(all.iter().map(|b| b.blank).sum::<u64>(), 2);
            assert_eq!(all.iter().map(|b| b.nbytes).sum::<u64>(), data.len() as u64);
            // the digest covers the file's bytes as stored (one-shot XXH3-128, canonical hex)
            let want = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
            assert_eq!(h.unwrap(), want);
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_first_batches_are_small_then_double() {
        let d = tmpdir("ramp");
        let line = format!("{{\"text\": \"{}\"}}\n", "x".repeat(1000));
        let n = (24 << 20) / line.len();
        let p = d.join("x.jsonl");
        std::fs::write(&p, line.repeat(n)).unwrap();
        let (bs, _) = read_all(p.to_str().unwrap(), opts(false, 1 << 30)).unwrap();
        let sizes: Vec<u64> = bs.iter().map(|b| b.nbytes).collect();
        let l = line.len() as u64;
        for (i, &cap) in [1u64 << 20, 2 << 20, 4 << 20, 8 << 20, 8 << 20]
            .iter()
            .enumerate()
        {
            assert!(sizes[i] >= cap && sizes[i] < cap + l, "{sizes:?}");
        }
        assert_eq!(sizes.iter().sum::<u64>(), (n * line.len()) as u64);
        assert_eq!(bs.iter().map(|b| b.len()).sum::<usize>(), n);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn truncated_gzip_and_zstd_say_how_far_they_were_read() {
        let d = tmpdir("trunc");
        let mut data = Vec::new();
        let mut rng = crate::lcg::Lcg(1);
        for i in 0..3000 {
            let words: String = (0..30)
                .map(|_| format!("w{} ", rng.next_u64() >> 40))
                .collect();
            data.extend_from_slice(format!("{{\"id\": {i}, \"text\": \"{words}\"}}\n").as_bytes());
        }
        let z = zstd::stream::encode_all(&data[..], 3).unwrap();
        for (name, full) in [("x.jsonl.gz", gz(&data)), ("x.jsonl.zst", z)] {
            let cut = &full[..full.len() * 3 / 5];
            let p = d.join(name);
            std::fs::write(&p, cut).unwrap();
            // an independent count: the complete lines a streaming decoder recovers
            let mut got = Vec::new();
            if name.ends_with(".gz") {
                let mut dz = flate2::Decompress::new(false);
                let body = &cut[10..];
                got.resize(data.len(), 0);
                let _ = dz.decompress(body, &mut got, flate2::FlushDecompress::None);
                got.truncate(dz.total_out() as usize);
            } else {
                use std::io::Read;
                let mut r = zstd::stream::read::Decoder::new(cut).unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            let n = got.iter().filter(|&&c| c == b'\n').count();
            assert!(n > 0 && n < 3000);
            let p = p.to_str().unwrap();
            let e = read_all(p, opts(false, 100)).unwrap_err().to_string();
            let want = format!(
                "{p}: truncated/corrupt compressed data after {n} records (line {})",
                n + 1
            );
            assert!(e.starts_with(&want), "{e}\n{want}");
            let (bs, h) = read_all(p, opts(true, 100)).unwrap();
            assert_eq!(bs.iter().map(|b| b.len()).sum::<usize>(), n);
            let dmg = bs.last().unwrap().damage.clone().unwrap();
            assert_eq!((dmg.line, dmg.records_before), (n + 1, n));
            assert!(h.is_some());
        }
        // not gzip at all
        let p = d.join("plain.gz");
        std::fs::write(&p, b"{\"text\": \"a\"}\n").unwrap();
        let e = read_all(p.to_str().unwrap(), opts(false, 10))
            .unwrap_err()
            .to_string();
        assert!(e.contains("after 0 records (line 1)"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
