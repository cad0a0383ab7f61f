use std::sync::Arc;

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::runtime()?.block_on(async {
        let boot = shared::Boot::from_env("publisher", publisher::NEEDS).await;
        let function = Arc::new(publisher::Publisher::new(&boot));
        shared::entry::run(move |event| {
            let function = function.clone();
            async move { function.handle(event).await }
        })
        .await
    })
}
