//! Is it really a picture, and how large: the `image` crate decodes it within limits (a
//! picture that declares more pixels than allowed is refused from its header, before any
//! pixel is decoded), and a small JPEG thumbnail is made from it, without the original's
//! metadata.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder as _, ImageFormat, ImageReader};

use super::PictureError;

/// Bounds on what is decoded.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Most pixels.
    pub max_pixels: u64,
    /// Longest side, pixels.
    pub max_side_px: u32,
    /// Thumbnail width, pixels.
    pub thumbnail_width: u32,
}

/// The kinds of picture taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// JPEG, what cameras and phones send.
    Jpeg,
    /// PNG, what a screenshot is.
    Png,
}

impl Kind {
    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
        }
    }

    /// Its file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Jpeg => "jpg",
            Kind::Png => "png",
        }
    }

    /// The kind a `Content-Type` names (parameters and case aside), if one taken.
    pub fn from_content_type(value: &str) -> Option<Kind> {
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("image/jpeg") {
            Some(Kind::Jpeg)
        } else if media.eq_ignore_ascii_case("image/png") {
            Some(Kind::Png)
        } else {
            None
        }
    }
}

/// A checked picture.
#[derive(Debug)]
pub struct Examined {
    /// What it is.
    pub kind: Kind,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// A JPEG `thumbnail_width` wide (or the picture's own width, if narrower).
    pub thumbnail: Vec<u8>,
}

/// Checks that `bytes` is a JPEG or PNG picture within `bounds` (and of the kind `declared`, if
/// given), and makes its thumbnail. CPU-bound: call from a blocking thread.
pub fn examine(
    bytes: &[u8],
    declared: Option<Kind>,
    bounds: &Bounds,
) -> Result<Examined, PictureError> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| PictureError::NotAnImage(e.to_string()))
    };
    let kind = match reader()?.format() {
        Some(ImageFormat::Jpeg) => Kind::Jpeg,
        Some(ImageFormat::Png) => Kind::Png,
        Some(other) => {
            return Err(PictureError::NotAnImage(format!(
                "it is {other:?}, and only JPEG and PNG are taken"
            )))
        }
        None => {
            return Err(PictureError::NotAnImage(
                "its first bytes are neither a JPEG's nor a PNG's".into(),
            ))
        }
    };
    if let Some(d) = declared.filter(|d| *d != kind) {
        return Err(PictureError::Mismatch {
            declared: d.content_type(),
            actual: kind.content_type(),
        });
    }
    // The header's dimensions first: a few bytes can declare gigapixels.
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| PictureError::NotAnImage(e.to_string()))?;
    if u64::from(width) * u64::from(height) > bounds.max_pixels
        || width.max(height) > bounds.max_side_px
    {
        return Err(PictureError::TooManyPixels {
            width,
            height,
            max_pixels: bounds.max_pixels,
            max_side: bounds.max_side_px,
        });
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(bounds.max_side_px);
    limits.max_image_height = Some(bounds.max_side_px);
    // RGBA with 16 bits a channel is the largest a decoder allocates per pixel.
    limits.max_alloc = Some(bounds.max_pixels.saturating_mul(8).saturating_add(16 << 20));
    let mut r = reader()?;
    r.limits(limits);
    let mut decoder = r.into_decoder().map_err(decode_error)?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let thumb = if img.width() > bounds.thumbnail_width {
        let h = ((u64::from(img.height()) * u64::from(bounds.thumbnail_width))
            / u64::from(img.width()))
        .max(1) as u32;
        img.thumbnail_exact(bounds.thumbnail_width, h)
    } else {
        img
    };
    let mut thumbnail = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut thumbnail, 80)
        .encode_image(&DynamicImage::ImageRgb8(thumb.to_rgb8()))
        .map_err(|e| PictureError::Internal(anyhow::anyhow!("encoding a thumbnail: {e}")))?;
    Ok(Examined {
        kind,
        width,
        height,
        thumbnail,
    })
}

fn decode_error(e: image::ImageError) -> PictureError {
    match e {
        image::ImageError::Limits(l) => PictureError::NotAnImage(format!(
            "decoding it would exceed the gateway's limits ({l})"
        )),
        e => PictureError::NotAnImage(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        max_pixels: 1_000_000,
        max_side_px: 4000,
        thumbnail_width: 320,
    };

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut out)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn a_jpeg_gets_a_thumbnail_320_wide_with_its_proportions() {
        let e = examine(&jpeg(800, 600), Some(Kind::Jpeg), &BOUNDS).unwrap();
        assert_eq!((e.kind, e.width, e.height), (Kind::Jpeg, 800, 600));
        let thumb = image::load_from_memory(&e.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
    }

    #[test]
    fn text_is_not_a_picture_and_a_png_is_not_a_jpeg() {
        let e = examine(b"hello, this is not a picture", None, &BOUNDS).unwrap_err();
        assert!(matches!(e, PictureError::NotAnImage(_)), "{e}");
        let e = examine(&jpeg(10, 10), Some(Kind::Png), &BOUNDS).unwrap_err();
        assert!(matches!(e, PictureError::Mismatch { .. }), "{e}");
    }

    #[test]
    fn a_huge_declared_size_is_refused_from_the_header() {
        // A valid JPEG header declaring 60000 x 60000 pixels, patched into a small picture.
        let mut bomb = jpeg(16, 16);
        let sof = bomb
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG has an SOF0 segment");
        // SOF0: marker, length (2), precision (1), height (2), width (2).
        bomb[sof + 5..sof + 7].copy_from_slice(&60000u16.to_be_bytes());
        bomb[sof + 7..sof + 9].copy_from_slice(&60000u16.to_be_bytes());
        let e = examine(&bomb, Some(Kind::Jpeg), &BOUNDS).unwrap_err();
        assert!(
            matches!(
                e,
                PictureError::TooManyPixels {
                    width: 60000,
                    height: 60000,
                    ..
                }
            ),
            "{e}"
        );
    }
}
