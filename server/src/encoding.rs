//! Content codings for static files: which one a client accepts
//! (`Accept-Encoding`, RFC 9110 §12.5.3), and each file compressed once in
//! each coding, so that no request pays for compression.

use bytes::Bytes;
use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// A coding a file can be sent in, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// Brotli.
    Brotli,
    /// Gzip.
    Gzip,
    /// The file as it is.
    Identity,
}

impl Coding {
    /// The `Content-Encoding` token, if the coding has one.
    pub fn token(self) -> Option<&'static str> {
        match self {
            Self::Brotli => Some("br"),
            Self::Gzip => Some("gzip"),
            Self::Identity => None,
        }
    }
}

/// The codings the request accepts, best first; identity last unless the
/// request refuses it (which this server then ignores, sending it anyway,
/// as a 406 would help nobody).
pub fn accepted(headers: &HeaderMap) -> Vec<Coding> {
    let quality = |token: &str| -> f32 {
        let mut wildcard = None;
        for value in headers.get_all(ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let q = parts
                    .filter_map(|param| param.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if name.eq_ignore_ascii_case(token) {
                    return q;
                }
                if name == "*" {
                    wildcard = Some(q);
                }
            }
        }
        wildcard.unwrap_or(0.0)
    };
    let mut codings: Vec<(Coding, f32)> = [(Coding::Brotli, quality("br")), (Coding::Gzip, quality("gzip"))]
        .into_iter()
        .filter(|(_, q)| *q > 0.0)
        .collect();
    // A stable sort keeps brotli ahead of gzip at equal quality.
    codings.sort_by(|a, b| b.1.total_cmp(&a.1));
    codings.into_iter().map(|(coding, _)| coding).chain([Coding::Identity]).collect()
}

/// Whether a file of this content type shrinks when compressed: text and
/// wasm do; images are compressed already.
pub fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || ["application/wasm", "application/json", "image/svg+xml"]
            .iter()
            .any(|t| content_type.starts_with(t))
}

/// `contents` in `coding`, or `None` when that does not make it smaller.
pub fn compress(contents: &[u8], coding: Coding) -> Option<Bytes> {
    use std::io::Write as _;
    let compressed = match coding {
        Coding::Identity => return None,
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(contents).ok()?;
            encoder.finish().ok()?
        }
        Coding::Brotli => {
            let mut output = Vec::new();
            // Quality 9: within a few percent of the smallest (11) at a
            // tenth of its time, which matters while a freshly started
            // server compresses its files beside its first visitors.
            let params = brotli::enc::BrotliEncoderParams { quality: 9, lgwin: 22, ..Default::default() };
            brotli::BrotliCompress(&mut &contents[..], &mut output, &params).ok()?;
            output
        }
    };
    (compressed.len() < contents.len()).then(|| Bytes::from(compressed))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn asking(value: &str) -> Vec<Coding> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        accepted(&headers)
    }

    #[test]
    fn the_best_accepted_coding_comes_first() {
        use Coding::{Brotli, Gzip, Identity};
        assert_eq!(asking("gzip, deflate, br, zstd"), [Brotli, Gzip, Identity], "what browsers send");
        assert_eq!(asking("gzip"), [Gzip, Identity]);
        assert_eq!(asking("br;q=0.5, gzip;q=0.8"), [Gzip, Brotli, Identity]);
        assert_eq!(asking("br;q=0, gzip"), [Gzip, Identity], "q=0 refuses");
        assert_eq!(asking("*"), [Brotli, Gzip, Identity]);
        assert_eq!(asking("identity"), [Identity]);
        assert_eq!(accepted(&HeaderMap::new()), [Identity], "no header: the file as it is");
    }

    #[test]
    fn each_coding_gives_back_the_file() {
        use std::io::Read as _;
        let file = "let chat = 'wtchat';\n".repeat(500);
        let gzip = compress(file.as_bytes(), Coding::Gzip).unwrap();
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gzip[..]).read_to_string(&mut unzipped).unwrap();
        assert_eq!(unzipped, file);
        let brotli = compress(file.as_bytes(), Coding::Brotli).unwrap();
        let mut unbrotlied = Vec::new();
        brotli::BrotliDecompress(&mut &brotli[..], &mut unbrotlied).unwrap();
        assert_eq!(unbrotlied, file.as_bytes());
        assert!(compress(b"x", Coding::Gzip).is_none(), "a file that would grow stays as it is");
        assert!(compressible("application/wasm") && !compressible("image/png"));
    }
}
