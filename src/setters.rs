//! The builder methods of the options types, written once: [`setters!`] turns a list of
//! `name(argument: Type)` lines into methods that take the options by value, set one
//! field and hand the options back, so that every client's `ClientOptions` chains the
//! same way (`ClientOptions::from_url(url)?.driver(kind).connect_timeout(t)`).

/// Writes one builder method per entry, each `#[must_use]`, in the `impl` block it is
/// invoked in:
///
/// - `/// doc` `name(arg: Type),` sets the field `name` to `arg`;
/// - `/// doc` `name(arg: Type) => place = expr,` sets `self.place` (a field, or a field
///   of a field: `decoder.max_bulk_len`) to `expr`, which may use `arg`.
///
/// The doc comment of each entry becomes the method's.
macro_rules! setters {
    ($(
        $(#[$attr:meta])*
        $name:ident($arg:ident: $ty:ty) $(=> $($place:ident).+ = $value:expr)?
    ),* $(,)?) => {
        $(
            $(#[$attr])*
            #[must_use]
            pub fn $name(mut self, $arg: $ty) -> Self {
                $crate::setters::setters!(@set self, $name, $arg $(, $($place).+ = $value)?);
                self
            }
        )*
    };
    (@set $self:ident, $name:ident, $arg:ident) => {
        $self.$name = $arg
    };
    (@set $self:ident, $name:ident, $arg:ident, $($place:ident).+ = $value:expr) => {
        $self.$($place).+ = $value
    };
}
pub(crate) use setters;

#[cfg(test)]
mod tests {
    #[derive(Debug, Default, PartialEq)]
    struct Inner {
        depth: u32,
    }

    #[derive(Debug, Default, PartialEq)]
    struct Options {
        size: usize,
        name: Option<String>,
        inner: Inner,
    }

    impl Options {
        setters! {
            /// Sets the size.
            size(size: usize),
            /// Sets the name.
            name(name: &str) => name = Some(name.to_owned()),
            /// Sets the depth, at least 1.
            depth(depth: u32) => inner.depth = depth.max(1),
        }
    }

    #[test]
    fn each_entry_sets_its_place() {
        let o = Options::default().size(3).name("n").depth(0);
        assert_eq!(
            o,
            Options {
                size: 3,
                name: Some("n".into()),
                inner: Inner { depth: 1 },
            }
        );
    }
}
