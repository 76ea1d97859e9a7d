import AioSwift
