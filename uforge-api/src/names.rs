//! The names of the API's enumerations, as JSON and the server's database spell them.

/// Gives a plain enum its wire names: `as_str`, `Display` and `FromStr`.
#[macro_export]
#[doc(hidden)]
macro_rules! wire_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name in JSON and in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", stringify!($ty), " {:?}"),
                        other
                    )),
                }
            }
        }
    };
}
