//! Symbolic sizes and small constant values.
//!
//! A [`SymDim`] is a monomial: an integer coefficient times a product of named symbols
//! (`batch`, `sequence`), enough for the shape arithmetic exporters emit (`batch*sequence`,
//! `sequence/1`, `64`). Sums of different monomials are not representable and fold to
//! "unknown" (`None`).

use std::fmt;

use egg::Symbol;

/// Name of the unknown-size placeholder (no `dim_param` of a model can start with it and be
/// renamed: only placeholders equal to exactly this name are).
const UNKNOWN: &str = "?";

/// A dimension or integer value: `coef * syms[0] * syms[1] * ...` (symbols sorted by name).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SymDim {
    coef: i64,
    syms: Vec<Symbol>,
}

impl SymDim {
    /// A known integer.
    pub fn known(v: i64) -> SymDim {
        SymDim {
            coef: v,
            syms: Vec::new(),
        }
    }

    /// A named symbol.
    pub fn symbol(name: &str) -> SymDim {
        SymDim {
            coef: 1,
            syms: vec![Symbol::from(name)],
        }
    }

    /// A placeholder for a size that inference cannot express (a fixed, nonnegative integer
    /// it does not know). The analysis renames every placeholder of a class's facts to a
    /// symbol unique to that class and position ([`SymDim::unknown_named`]), so two unknown
    /// sizes are never taken for equal.
    pub fn unknown() -> SymDim {
        SymDim::symbol(UNKNOWN)
    }

    /// True for the placeholder made by [`SymDim::unknown`], and for any product involving it
    /// (which is as unknown).
    pub fn is_unknown_placeholder(&self) -> bool {
        self.syms.iter().any(|s| s.as_str() == UNKNOWN)
    }

    /// The symbol standing for an unknown size at `slot` of class `class`.
    pub fn unknown_named(class: usize, slot: &str) -> SymDim {
        SymDim::symbol(&format!("{UNKNOWN}{class}.{slot}"))
    }

    /// True when the dim involves an unknown size (an unknown placeholder, a per-class unknown
    /// or an unnamed dynamic dim of a declared type: symbols starting with `?`).
    pub fn is_unnamed(&self) -> bool {
        self.syms.iter().any(|s| s.as_str().starts_with(UNKNOWN))
    }

    /// The symbol when the dim is exactly one named size (coefficient 1).
    pub fn as_symbol(&self) -> Option<Symbol> {
        match self.syms.as_slice() {
            [s] if self.coef == 1 => Some(*s),
            _ => None,
        }
    }

    /// The value when it is a known integer.
    pub fn as_known(&self) -> Option<i64> {
        if self.syms.is_empty() {
            Some(self.coef)
        } else {
            None
        }
    }

    /// True when the two are certainly different: symbols are sizes (never negative), so a
    /// symbolic monomial with a positive coefficient differs from every negative integer.
    pub fn differs_from(&self, other: &SymDim) -> bool {
        match (self.as_known(), other.as_known()) {
            (Some(a), Some(b)) => a != b,
            (None, Some(k)) => self.coef > 0 && k < 0,
            (Some(k), None) => other.coef > 0 && k < 0,
            (None, None) => false,
        }
    }

    /// Product.
    pub fn mul(&self, other: &SymDim) -> Option<SymDim> {
        let coef = self.coef.checked_mul(other.coef)?;
        if coef == 0 {
            return Some(SymDim::known(0));
        }
        let mut syms: Vec<Symbol> = self.syms.iter().chain(&other.syms).copied().collect();
        syms.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Some(SymDim { coef, syms })
    }

    /// Exact quotient: `None` unless `other` divides `self` as a monomial.
    pub fn div_exact(&self, other: &SymDim) -> Option<SymDim> {
        if self.coef.checked_rem(other.coef)? != 0 {
            return None;
        }
        let mut syms = self.syms.clone();
        for s in &other.syms {
            let pos = syms.iter().position(|x| x == s)?;
            syms.remove(pos);
        }
        Some(SymDim {
            coef: self.coef.checked_div(other.coef)?,
            syms,
        })
    }

    /// Sum, when both are the same monomial up to the coefficient (or both known).
    pub fn add(&self, other: &SymDim) -> Option<SymDim> {
        if self.coef == 0 {
            return Some(other.clone());
        }
        if other.coef == 0 {
            return Some(self.clone());
        }
        if self.syms != other.syms {
            return None;
        }
        let coef = self.coef.checked_add(other.coef)?;
        if coef == 0 {
            Some(SymDim::known(0))
        } else {
            Some(SymDim {
                coef,
                syms: self.syms.clone(),
            })
        }
    }

    /// Negation.
    pub fn neg(&self) -> Option<SymDim> {
        Some(SymDim {
            coef: self.coef.checked_neg()?,
            syms: self.syms.clone(),
        })
    }
}

impl fmt::Display for SymDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.syms.is_empty() {
            return write!(f, "{}", self.coef);
        }
        if self.coef != 1 {
            write!(f, "{}*", self.coef)?;
        }
        let names: Vec<&str> = self.syms.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join("*"))
    }
}

impl fmt::Debug for SymDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Product of several dims (`None` on overflow).
pub fn product(dims: &[SymDim]) -> Option<SymDim> {
    dims.iter().try_fold(SymDim::known(1), |acc, d| acc.mul(d))
}

/// A shape: one [`SymDim`] per axis.
pub type Shape = Vec<SymDim>;

/// One element of a small constant: integers (and booleans as 0/1) may be symbolic.
#[derive(Clone)]
pub enum Scalar {
    /// Integer or boolean element.
    Int(SymDim),
    /// Floating-point element (kept in `f64`, rounded to `f32` after each `f32` operation).
    Float(f64),
}

impl PartialEq for Scalar {
    /// Floats compare by bits, so a NaN constant equals itself (analysis merging relies on
    /// equality to stop).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Scalar::Int(a), Scalar::Int(b)) => a == b,
            (Scalar::Float(a), Scalar::Float(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }
}

impl Eq for Scalar {}

impl fmt::Debug for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(d) => write!(f, "{d}"),
            Scalar::Float(v) => write!(f, "{v}"),
        }
    }
}

impl Scalar {
    /// The element as a number, when known.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(d) => d.as_known().map(|v| v as f64),
            Scalar::Float(v) => Some(*v),
        }
    }

    /// The element as a known integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Int(d) => d.as_known(),
            Scalar::Float(_) => None,
        }
    }
}

/// A small constant tensor (at most `MAX_CONST_ELEMS` (64) elements), row-major.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ConstValue {
    /// Shape.
    pub dims: Vec<usize>,
    /// Elements.
    pub elems: Vec<Scalar>,
}

/// Tensors with more elements than this are not tracked as constant values.
pub const MAX_CONST_ELEMS: usize = 64;

impl ConstValue {
    /// A scalar (rank 0).
    pub fn scalar(s: Scalar) -> ConstValue {
        ConstValue {
            dims: Vec::new(),
            elems: vec![s],
        }
    }

    /// A 1-D vector.
    pub fn vector(elems: Vec<Scalar>) -> ConstValue {
        ConstValue {
            dims: vec![elems.len()],
            elems,
        }
    }

    /// The single element of a one-element tensor (any rank).
    pub fn single(&self) -> Option<&Scalar> {
        match self.elems.as_slice() {
            [s] => Some(s),
            _ => None,
        }
    }

    /// The elements as symbolic integers (for shape vectors).
    pub fn as_dims(&self) -> Option<Vec<SymDim>> {
        self.elems
            .iter()
            .map(|e| match e {
                Scalar::Int(d) => Some(d.clone()),
                Scalar::Float(_) => None,
            })
            .collect()
    }

    /// The elements as known integers.
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        self.elems.iter().map(Scalar::as_i64).collect()
    }

    /// The elements as known numbers.
    pub fn as_f64s(&self) -> Option<Vec<f64>> {
        self.elems.iter().map(Scalar::as_f64).collect()
    }

    /// The common element when every element is equal.
    pub fn uniform(&self) -> Option<Scalar> {
        let first = self.elems.first()?;
        self.elems.iter().all(|e| e == first).then(|| first.clone())
    }
}
