//! [`text_enum!`](crate::text_enum): a closed set of names kept as text (in the database, the
//! API, forms and configuration), written once: the variants and their texts generate `ALL`,
//! `as_str`, `Display`, `FromStr` and `TryFrom<String>` (both refusing with [`UnknownName`](crate::UnknownName)
//! that lists the valid names) and serde in the same texts.

/// Declares `enum Name ("what it is") { Variant = "text", ... }`; see the module documentation.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            const NAMES: &'static [&'static str] = &[$($text),+];
            pub const ALL: [$name; $name::NAMES.len()] = [$($name::$variant),+];

            /// The name stored in the database and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownName;

            fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                let trimmed = value.trim();
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str() == trimmed)
                    .ok_or_else(|| $crate::UnknownName {
                        what: $what,
                        value: value.to_owned(),
                        expected: $name::NAMES,
                    })
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::UnknownName;

            fn try_from(value: String) -> ::std::result::Result<Self, $crate::UnknownName> {
                value.parse()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::text_enum! {
        /// A test set.
        enum Colour ("colour") {
            Red = "red",
            DarkBlue = "dark_blue",
        }
    }

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for c in Colour::ALL {
            assert_eq!(c.as_str().parse::<Colour>().unwrap(), c);
            assert_eq!(Colour::try_from(c.to_string()).unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), c);
        }
        assert_eq!(" red ".parse::<Colour>().unwrap(), Colour::Red);
        assert_eq!(
            "blue".parse::<Colour>().unwrap_err().to_string(),
            "`blue` is not a valid colour; expected one of: red, dark_blue"
        );
        assert!(serde_json::from_str::<Colour>("\"blue\"").is_err());
    }
}
