//! What a page shows when the app panics. A panic in wasm stops the app
//! for good (`panic = "abort"`: the module traps with `unreachable`), and
//! without this the page would just stop answering. The hook writes the
//! panic to the browser console and puts a plain notice over the page,
//! built with the DOM alone since nothing of the app can be trusted to run
//! any more.

use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Installs the hook. `notice` is the text the visitor or agent reads
/// ("something went wrong, reload"), in their language; `class` the
/// element's class, for the app's style sheet.
pub fn report_panics(notice: &'static str, class: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        console_error(&info.to_string());
        show(notice, class);
    }));
}

/// Puts the notice at the end of `<body>`, once.
fn show(notice: &str, class: &str) {
    let Some(document) = web_sys::window().and_then(|window| window.document()) else {
        return;
    };
    let Some(body) = document.body() else {
        return;
    };
    if document.get_element_by_id("kefu-crash").is_some() {
        return;
    }
    let Ok(element) = document.create_element("div") else {
        return;
    };
    element.set_id("kefu-crash");
    element.set_class_name(class);
    let _ = element.set_attribute("role", "alert");
    element.set_text_content(Some(notice));
    let _ = body.append_child(&element);
}
