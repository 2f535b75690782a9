//! The one parser and printer for every amount and price the CLI takes or shows.
//!
//! An ETH amount is a decimal with a unit (`1eth`, `0.5 eth`, `20gwei`, `100wei`; no unit
//! means ETH). A token amount is a decimal in the token's own units, scaled by the decimals the
//! token contract reports. Negative numbers, more fractional digits than the unit can hold and
//! values beyond 256 bits are refused rather than wrapped or rounded.

use alloy::primitives::U256;

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AmountError {
    #[error("amount `{0}` is empty; give a number with a unit like 0.5eth, 20gwei or 100wei")]
    Empty(String),
    #[error("amount `{0}` is negative; amounts are zero or more")]
    Negative(String),
    #[error("amount `{0}` is not a number with a unit like 0.5eth, 20gwei or 100wei")]
    NotANumber(String),
    #[error("unit `{unit}` in `{text}` is not known; use eth, gwei or wei")]
    UnknownUnit { text: String, unit: String },
    #[error(
        "amount `{text}` is finer than the smallest unit ({decimals} decimal places at most); round it or use a smaller unit"
    )]
    TooPrecise { text: String, decimals: u8 },
    #[error("amount `{0}` does not fit in 256 bits")]
    Overflow(String),
}

impl From<AmountError> for crate::Failure {
    fn from(e: AmountError) -> Self {
        crate::Failure::new(crate::exit::USAGE, e.to_string())
    }
}

/// Decimal places of an ETH unit name.
fn eth_unit_decimals(unit: &str) -> Option<u8> {
    match unit {
        "" | "eth" | "ether" => Some(18),
        "gwei" => Some(9),
        "wei" => Some(0),
        _ => None,
    }
}

/// Splits `text` into its number and (lower-cased) unit, refusing signs.
fn split(text: &str) -> Result<(&str, String), AmountError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AmountError::Empty(text.to_owned()));
    }
    if trimmed.starts_with('-') {
        return Err(AmountError::Negative(text.to_owned()));
    }
    let trimmed = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let at = trimmed.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(trimmed.len());
    if trimmed[..at].trim().is_empty() {
        return Err(AmountError::NotANumber(text.to_owned()));
    }
    Ok((trimmed[..at].trim(), trimmed[at..].trim().to_ascii_lowercase()))
}

/// A plain decimal (`12`, `0.5`, `.5`) scaled by `decimals` places.
fn scale(text: &str, number: &str, decimals: u8) -> Result<U256, AmountError> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(AmountError::NotANumber(text.to_owned()));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > usize::from(decimals) {
        return Err(AmountError::TooPrecise { text: text.to_owned(), decimals });
    }
    let padded = format!("{whole}{fraction}{}", "0".repeat(usize::from(decimals) - fraction.len()));
    let padded = padded.trim_start_matches('0');
    if padded.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(padded, 10).map_err(|_| AmountError::Overflow(text.to_owned()))
}

/// An ETH amount in wei: `1eth`, `0.5 eth`, `20gwei`, `100wei`, `1.5` (ETH).
pub(crate) fn parse_eth(text: &str) -> Result<U256, AmountError> {
    let (number, unit) = split(text)?;
    let decimals = eth_unit_decimals(&unit)
        .ok_or_else(|| AmountError::UnknownUnit { text: text.to_owned(), unit: unit.clone() })?;
    scale(text, number, decimals)
}

/// A token amount in its smallest unit: `12.5`, or `12.5 SYMBOL` naming the token's own symbol.
pub(crate) fn parse_token(text: &str, decimals: u8, symbol: &str) -> Result<U256, AmountError> {
    let (number, unit) = split(text)?;
    if !unit.is_empty() && !unit.eq_ignore_ascii_case(symbol) {
        return Err(AmountError::UnknownUnit { text: text.to_owned(), unit });
    }
    scale(text, number, decimals)
}

/// `value` smallest units as a decimal with `decimals` places, trailing zeros dropped.
pub(crate) fn format_units(value: U256, decimals: u8) -> String {
    let digits = value.to_string();
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = decimals + 1);
    let (whole, fraction) = padded.split_at(padded.len() - decimals);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") }
}

/// An ETH amount for people: `0.01 ETH`.
pub(crate) fn format_eth(wei: U256) -> String {
    format!("{} ETH", format_units(wei, 18))
}

/// A token amount for people: `12.5 TST`.
pub(crate) fn format_token(value: U256, decimals: u8, symbol: &str) -> String {
    format!("{} {symbol}", format_units(value, decimals))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn eth_units() {
        assert_eq!(parse_eth("1eth").unwrap(), U256::from(10u128.pow(18)));
        assert_eq!(parse_eth("0.5 eth").unwrap(), U256::from(5 * 10u128.pow(17)));
        assert_eq!(parse_eth("1.5").unwrap(), U256::from(15 * 10u128.pow(17)));
        assert_eq!(parse_eth("20gwei").unwrap(), U256::from(20 * 10u128.pow(9)));
        assert_eq!(parse_eth("100wei").unwrap(), U256::from(100));
        assert_eq!(parse_eth("1.50ETH").unwrap(), U256::from(15 * 10u128.pow(17)));
        assert_eq!(parse_eth(".5gwei").unwrap(), U256::from(500_000_000));
        assert_eq!(parse_eth("0").unwrap(), U256::ZERO);
    }

    #[test]
    fn refusals_name_the_cause() {
        assert_eq!(parse_eth("-1"), Err(AmountError::Negative("-1".into())));
        assert_eq!(parse_eth("-0.5eth"), Err(AmountError::Negative("-0.5eth".into())));
        assert!(matches!(parse_eth("0.0000000000000000001eth"), Err(AmountError::TooPrecise { decimals: 18, .. })));
        assert!(matches!(parse_eth("1.5wei"), Err(AmountError::TooPrecise { decimals: 0, .. })));
        assert!(matches!(parse_eth("1e400wei"), Err(AmountError::UnknownUnit { .. })));
        assert!(matches!(parse_eth(&format!("{}wei", "9".repeat(80))), Err(AmountError::Overflow(_))));
        assert!(matches!(parse_eth("5 dollars"), Err(AmountError::UnknownUnit { .. })));
        assert!(matches!(parse_eth("1.2.3eth"), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse_eth("eth"), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse_eth("five"), Err(AmountError::NotANumber(_))));
        assert!(matches!(parse_eth("  "), Err(AmountError::Empty(_))));
        let message = parse_eth("0.0000000000000000001eth").unwrap_err().to_string();
        assert!(message.contains("18 decimal places"), "{message}");
    }

    #[test]
    fn tokens_use_their_decimals_and_symbol() {
        assert_eq!(parse_token("12.5", 6, "USDC").unwrap(), U256::from(12_500_000));
        assert_eq!(parse_token("12.5 usdc", 6, "USDC").unwrap(), U256::from(12_500_000));
        assert!(matches!(parse_token("0.0000001", 6, "USDC"), Err(AmountError::TooPrecise { decimals: 6, .. })));
        assert!(matches!(parse_token("1eth", 6, "USDC"), Err(AmountError::UnknownUnit { .. })));
        assert!(matches!(parse_token("-3", 6, "USDC"), Err(AmountError::Negative(_))));
    }

    #[test]
    fn printing_keeps_the_unit() {
        assert_eq!(format_eth(U256::from(25) * U256::from(10u128.pow(18))), "25 ETH");
        assert_eq!(format_eth(U256::from(10u128.pow(16))), "0.01 ETH");
        assert_eq!(format_eth(U256::from(1)), "0.000000000000000001 ETH");
        assert_eq!(format_eth(U256::ZERO), "0 ETH");
        assert_eq!(format_token(U256::from(12_500_000), 6, "USDC"), "12.5 USDC");
        assert_eq!(format_units(U256::from(7), 0), "7");
    }
}
