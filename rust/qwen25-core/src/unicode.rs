//! Unicode character classes shared by the data-pipeline areas (decontamination, filters).

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Whitespace as Python's `str.split()` sees it: Unicode White_Space plus U+001C..U+001F.
#[inline]
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Punctuation or symbol: Unicode general category P* or S* (covers Python's `string.punctuation`).
#[inline]
pub fn is_punct_or_symbol(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    let g = get_general_category(c);
    is_p_category(g)
        || matches!(
            g,
            G::MathSymbol | G::CurrencySymbol | G::ModifierSymbol | G::OtherSymbol
        )
}

/// General category P* (Pc Pd Ps Pe Pi Pf Po).
#[inline]
fn is_p_category(g: G) -> bool {
    matches!(
        g,
        G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
    )
}

/// Unicode general category P* (what Python's `unicodedata.category(c).startswith("P")` says).
#[inline]
pub fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    is_p_category(get_general_category(c))
}
