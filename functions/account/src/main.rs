use std::sync::Arc;

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::runtime()?.block_on(async {
        let boot = shared::Boot::from_env("account", account::NEEDS).await;
        let function = Arc::new(account::Account::new(&boot));
        shared::http::run(move |req| {
            let function = function.clone();
            async move { function.handle(req).await }
        })
        .await
    })
}
