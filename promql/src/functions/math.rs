//! Element-wise float functions (`abs`, `ln`, trig, `clamp`, `round`, ...) as pure `f64`
//! functions, with Go's `math` semantics where Rust's differ (NaN in min/max).

/// The function of one float that a name denotes, if it is one.
pub(crate) fn unary(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => sgn,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// The sign: -1, 0 or 1, NaN for NaN.
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

/// Go's `math.Max`: NaN wins, unlike Rust's `f64::max`.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// `round(v, to_nearest)`: halves round up, to a multiple of `to_nearest`. Dividing by the
/// inverse rather than multiplying by `to_nearest` gives the digits Prometheus gives.
pub(crate) fn round(v: f64, to_nearest: f64) -> f64 {
    let inverse = 1.0 / to_nearest;
    (v * inverse + 0.5).floor() / inverse
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_semantics() {
        assert!(go_max(f64::NAN, 1.0).is_nan());
        assert!(go_min(1.0, f64::NAN).is_nan());
        assert_eq!(round(2.5, 1.0), 3.0);
        assert_eq!(round(-2.5, 1.0), -2.0);
        assert_eq!(round(12.34, 0.1), 12.3);
        assert_eq!(sgn(-3.0), -1.0);
        assert!(sgn(f64::NAN).is_nan());
        assert_eq!(unary("deg").map(|f| f(std::f64::consts::PI)), Some(180.0));
    }
}
