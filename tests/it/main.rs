//! synscope's integration tests, one binary: replay of recorded fixtures, the public corpus against
//! its independent oracle, and the purity of the core.

mod corpus;
mod util;
