import Bus
import Model

extension MicroService.Failure {
    /// What a request endpoint answers for `error`: a failure as it is, a bad field or a body
    /// that is not JSON 400, anything else 500 (the admin endpoints' and the fleet API's rule).
    public static func answer(for error: any Error) -> MicroService.Failure {
        if let failure = error as? MicroService.Failure { return failure }
        if let field = error as? JSONFieldError { return MicroService.Failure(400, field.description) }
        return MicroService.Failure(error is JSONParseError ? 400 : 500, "\(error)")
    }
}
