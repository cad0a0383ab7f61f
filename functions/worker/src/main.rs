#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let boot = shared::Boot::from_env("worker", worker::NEEDS).await;
    let function = worker::Worker::new(&boot);
    shared::batch::run(|event| function.handle(event)).await
}
