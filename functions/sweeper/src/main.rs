use std::sync::Arc;

fn main() -> Result<(), lambda_http::Error> {
    shared::entry::runtime()?.block_on(async {
        let boot = shared::Boot::from_env("sweeper", sweeper::NEEDS).await;
        let function = Arc::new(sweeper::SweeperFunction::new(&boot));
        shared::entry::run(move |event| {
            let function = function.clone();
            async move { function.handle(event).await }
        })
        .await
    })
}
