//! Property-based fuzzing of every input a user or a peer controls: the logical graph JSON,
//! compiled and serving graph JSON, the cluster TOML, `.npy`/`.npz` files, MNIST IDX files and
//! the wire format of batches (frames and hellos of the QUIC transport are fuzzed inside the
//! crate, `transport::quic_fuzz`). Each target starts from valid inputs and mutates their
//! structure and their bytes, and also feeds raw bytes. Nothing may panic or abort (no
//! allocation beyond what the input justifies or a stated limit); every failure is a typed
//! error; what parses is run through what the tools do next where that is cheap.
//!
//! ```text
//! cargo test --release -p shareflow-runtime --test fuzz                        # seeded, seconds
//! PROPTEST_CASES=1000000 cargo test --release -p shareflow-runtime --test fuzz  # longer
//! PROPTEST_RNG_SEED=7 cargo test --release -p shareflow-runtime --test fuzz     # other cases
//! ```

mod cluster;
mod compiled_graph;
mod graph_json;
mod mnist;
mod mutate;
mod npy;
mod wire;
