//! Kernel parameters, declared once. Every shader reads its parameters from binding 0 as
//! `p: array<u32>`; which word holds what is spelled in one place, the Rust struct a kernel
//! declares with [`params!`]. Its fields, in order, are the words (a scalar one word, an array
//! its length, a trailing `Vec<u32>` whatever follows), and the shader is compiled with one WGSL
//! constant per field naming the field's first word: field `pad_top` is `P_PAD_TOP` (a field
//! that is itself a params struct also brings its own fields' names, offset). Shaders
//! index `p` only through these names (`p[P_PAD_TOP]`, `p[P_SHAPE + k]`), so the word order
//! cannot drift between Rust and WGSL: a renamed or removed field no longer compiles in the
//! shader, a reordered one moves both sides. `no_shader_indexes_params_by_number` holds every
//! shader to that.

/// The named slots of a params struct in word order.
pub(crate) type Layout = &'static [Slot];

/// One field of a params struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub name: &'static str,
    /// Words it takes; 0 for a trailing `Vec<u32>`, whose length varies.
    pub len: usize,
    /// The fields of a field that is itself a params struct (empty otherwise).
    pub inner: Layout,
}

/// Fixed words of `layout`.
pub(crate) const fn layout_len(layout: Layout) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < layout.len() {
        total += layout[i].len;
        i += 1;
    }
    total
}

/// A kernel's parameters: a struct made by [`params!`].
pub(crate) trait Params {
    /// Its slots, in word order.
    const LAYOUT: Layout;
    /// The words, in [`Self::LAYOUT`]'s order.
    fn words(&self) -> Vec<u32>;
}

/// A field type of a params struct: how many words it takes and how it writes them.
pub(crate) trait Words {
    /// Words it takes; 0 for a variable-length tail.
    const LEN: usize;
    /// Its fields, when it is a params struct.
    const INNER: Layout = &[];
    fn push(&self, out: &mut Vec<u32>);
}

impl Words for u32 {
    const LEN: usize = 1;
    fn push(&self, out: &mut Vec<u32>) {
        out.push(*self);
    }
}

/// An f32, as its bits (the shader reads it with `bitcast<f32>`).
impl Words for f32 {
    const LEN: usize = 1;
    fn push(&self, out: &mut Vec<u32>) {
        out.push(self.to_bits());
    }
}

/// An i32, as its bits (the shader reads it with `bitcast<i32>`).
impl Words for i32 {
    const LEN: usize = 1;
    fn push(&self, out: &mut Vec<u32>) {
        out.push(*self as u32);
    }
}

/// 0 or 1.
impl Words for bool {
    const LEN: usize = 1;
    fn push(&self, out: &mut Vec<u32>) {
        out.push(*self as u32);
    }
}

impl<T: Words, const N: usize> Words for [T; N] {
    const LEN: usize = T::LEN * N;
    fn push(&self, out: &mut Vec<u32>) {
        self.iter().for_each(|w| w.push(out));
    }
}

/// A variable-length tail (tables, per-step words): only as the last field.
impl Words for Vec<u32> {
    const LEN: usize = 0;
    fn push(&self, out: &mut Vec<u32>) {
        out.extend_from_slice(self);
    }
}

/// The WGSL constants of `layout`: `const P_<FIELD>: u32 = <first word>u;` per field (and per
/// field of a nested params struct).
pub(crate) fn wgsl(layout: Layout) -> String {
    fn names(layout: Layout, mut at: usize, out: &mut String) {
        for slot in layout {
            out.push_str(&format!("const P_{}: u32 = {at}u;\n", slot.name.to_ascii_uppercase()));
            names(slot.inner, at, out);
            at += slot.len;
        }
    }
    let mut out = String::new();
    names(layout, 0, &mut out);
    out
}

/// Why `layout` is not a valid params layout (a variable-length field before the last or in a
/// nested struct, two fields with one WGSL name), if so.
pub(crate) fn malformed(layout: Layout) -> Option<String> {
    fn all(layout: Layout, out: &mut Vec<&'static str>) {
        for s in layout {
            out.push(s.name);
            all(s.inner, out);
        }
    }
    let mut names = Vec::new();
    all(layout, &mut names);
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0].eq_ignore_ascii_case(w[1])) {
        return Some(format!("two fields are named `{}`", w[0]));
    }
    if let Some(s) = layout.iter().find(|s| s.inner.iter().any(|i| i.len == 0)) {
        return Some(format!("field `{}` is a params struct with a variable length", s.name));
    }
    let tail = layout.iter().position(|s| s.len == 0)?;
    (tail + 1 != layout.len()).then(|| format!("field `{}` has a variable length but is not last", layout[tail].name))
}

/// Declares a kernel's params struct (see the module docs): `params! { /// doc
/// pub(crate) struct PoolParams { total: u32, h: u32, alpha: f32, shape: [u32; 6] } }`.
macro_rules! params {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::backend::wgpu::kernels::params::Params for $name {
            const LAYOUT: $crate::backend::wgpu::kernels::params::Layout = &[$(
                $crate::backend::wgpu::kernels::params::Slot {
                    name: stringify!($field),
                    len: <$ty as $crate::backend::wgpu::kernels::params::Words>::LEN,
                    inner: <$ty as $crate::backend::wgpu::kernels::params::Words>::INNER,
                }
            ),*];

            fn words(&self) -> Vec<u32> {
                let mut out = Vec::new();
                $($crate::backend::wgpu::kernels::params::Words::push(&self.$field, &mut out);)*
                out
            }
        }

        /// As a field of another params struct: its words, its fields' names.
        impl $crate::backend::wgpu::kernels::params::Words for $name {
            const LEN: usize = $crate::backend::wgpu::kernels::params::layout_len(
                <$name as $crate::backend::wgpu::kernels::params::Params>::LAYOUT,
            );
            const INNER: $crate::backend::wgpu::kernels::params::Layout =
                <$name as $crate::backend::wgpu::kernels::params::Params>::LAYOUT;
            fn push(&self, out: &mut Vec<u32>) {
                out.extend($crate::backend::wgpu::kernels::params::Params::words(self));
            }
        }
    };
}
pub(crate) use params;

#[cfg(test)]
mod tests {
    use super::*;

    params! {
        /// A layout with every field kind.
        struct Every {
            total: u32,
            alpha: f32,
            offset: i32,
            flag: bool,
            shape: [u32; 3],
            tables: Vec<u32>,
        }
    }

    #[test]
    fn fields_become_words_and_constants_in_order() {
        let p = Every { total: 7, alpha: 1.5, offset: -2, flag: true, shape: [4, 5, 6], tables: vec![9, 10] };
        assert_eq!(p.words(), vec![7, 1.5f32.to_bits(), (-2i32) as u32, 1, 4, 5, 6, 9, 10]);
        assert_eq!(
            wgsl(Every::LAYOUT),
            "const P_TOTAL: u32 = 0u;\nconst P_ALPHA: u32 = 1u;\nconst P_OFFSET: u32 = 2u;\n\
             const P_FLAG: u32 = 3u;\nconst P_SHAPE: u32 = 4u;\nconst P_TABLES: u32 = 7u;\n"
        );
        assert_eq!(malformed(Every::LAYOUT), None);
        const TAIL_FIRST: Layout =
            &[Slot { name: "tables", len: 0, inner: &[] }, Slot { name: "total", len: 1, inner: &[] }];
        assert!(malformed(TAIL_FIRST).unwrap().contains("`tables`"));
        const NESTED_TAIL: Layout = &[Slot { name: "head", len: 1, inner: TAIL_FIRST }];
        assert!(malformed(NESTED_TAIL).unwrap().contains("`head`"));
        const TWICE: Layout =
            &[Slot { name: "a", len: 1, inner: &[] }, Slot { name: "x", len: 3, inner: Inner::LAYOUT }];
        assert!(malformed(TWICE).unwrap().contains("`a`"));
    }

    params! {
        struct Inner {
            a: u32,
            b: [u32; 2],
        }
    }

    params! {
        struct Outer {
            head: u32,
            inner: Inner,
            tail: f32,
        }
    }

    #[test]
    fn a_nested_struct_brings_its_names() {
        let p = Outer { head: 1, inner: Inner { a: 2, b: [3, 4] }, tail: 0.5 };
        assert_eq!(p.words(), vec![1, 2, 3, 4, 0.5f32.to_bits()]);
        assert_eq!(
            wgsl(Outer::LAYOUT),
            "const P_HEAD: u32 = 0u;\nconst P_INNER: u32 = 1u;\nconst P_A: u32 = 1u;\nconst P_B: u32 = 2u;\n\
             const P_TAIL: u32 = 4u;\n"
        );
    }

    /// Every shader reads its params through the generated names, never by word number (an
    /// index or a `broadcast_offsets` base that is a literal): the one guard against a shader
    /// and its struct disagreeing on the order.
    #[test]
    fn no_shader_indexes_params_by_number() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/backend/wgpu/kernels");
        let mut sources = vec![("PRELUDE".to_string(), super::super::PRELUDE.to_string())];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                sources.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
            }
        }
        assert!(sources.len() > 20, "only {} shaders found in {}", sources.len() - 1, dir.display());
        let numbered = |code: &str, at: usize| code[at..].trim_start().starts_with(|c: char| c.is_ascii_digit());
        for (name, text) in &sources {
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap();
                for (at, _) in code.match_indices("p[") {
                    let own = code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
                    assert!(
                        own || !numbered(code, at + 2),
                        "{name}:{}: `{}` indexes the params by number",
                        n + 1,
                        line.trim()
                    );
                }
                for (at, call) in code.match_indices("broadcast_offsets(") {
                    let args = &code[at + call.len()..];
                    let Some(comma) = args.find(',') else { continue };
                    assert!(
                        !numbered(args, comma + 1),
                        "{name}:{}: `{}` passes a params offset by number",
                        n + 1,
                        line.trim()
                    );
                }
            }
        }
    }
}
