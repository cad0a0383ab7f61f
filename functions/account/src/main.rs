use lambda_http::{Error, run, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = shared::App::from_env(account::NEEDS).await;
    run(service_fn(|req| async {
        Ok::<_, std::convert::Infallible>(account::handle(&app, req).await)
    }))
    .await
}
