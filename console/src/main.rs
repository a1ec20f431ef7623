//! Mounts the console. The page's module script calls the wasm-bindgen
//! glue's `init()`, which runs this.

fn main() {
    // On the host (`cargo build --workspace`) there is no page to mount on.
    #[cfg(target_arch = "wasm32")]
    kefu_console::mount();
}
