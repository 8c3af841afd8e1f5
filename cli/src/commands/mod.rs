//! One module per subcommand.

pub mod check;
pub mod inspect;
pub mod keygen;
pub mod keys;
pub mod migrate;
pub mod pins;
pub mod regenerate;
pub mod rewrap;
pub mod rewrap_online;
pub mod seal;
pub mod unseal;
