//! Authorization: route selection and the conditions a route requires.

pub mod condition;
pub mod path;
pub mod route;
